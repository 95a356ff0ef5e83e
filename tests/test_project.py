"""The project's own promises: one package list, paired notebooks, the README's commands."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_names(requirements):
    return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_and_pyproject_name_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = package_names(project["dependencies"] + project["optional-dependencies"]["test"])
    pip_section = (ROOT / "environment.yml").read_text().split("- pip:")[1]
    listed = package_names(re.findall(r"^\s+- ([A-Za-z]\S*)$", pip_section, flags=re.M))
    assert listed == declared


def test_every_notebook_is_paired_with_its_source():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "nbtool.py"), "check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 out of sync" in done.stdout


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^(make \w+)$", readme, flags=re.M)
    assert "make course" in commands and "make test" in commands
    assert re.search(r"^make test$", ci, flags=re.M)


def test_readme_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, flags=re.M))
    for target in re.findall(r"\bmake ([a-z-]+)", (ROOT / "README.md").read_text()):
        assert target in targets, f"README mentions `make {target}`, the Makefile lacks it"


def test_readme_make_commands_dry_run():
    for target in sorted(set(re.findall(r"\bmake ([a-z-]+)", (ROOT / "README.md").read_text()))):
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"make -n {target}: {done.stderr}"


def test_readme_timings_are_the_measured_ones():
    measured = (ROOT / "bench" / "results" / "timings.md").read_text().split("\n\n", 2)[2]
    assert measured.strip() in (ROOT / "README.md").read_text(), (
        "README's timing table differs from bench/results/timings.md: copy the table across")
