"""The project's own promises: one package list, paired notebooks, the README's commands,
a clean clone after `make course`, and no step a user must know about beyond them."""
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import load_script, require

ROOT = Path(__file__).resolve().parent.parent
system = load_script("tools", "system")
nbtool = load_script("tools", "nbtool")
notebooks = load_script("tools", "notebooks")


def package_names(requirements):
    return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_and_pyproject_name_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = package_names(project["dependencies"] + project["optional-dependencies"]["test"])
    pip_section = (ROOT / "environment.yml").read_text().split("- pip:")[1]
    listed = package_names(re.findall(r"^\s+- ([A-Za-z]\S*)$", pip_section, flags=re.M))
    assert listed == declared


def test_every_notebook_is_paired_with_its_source(capsys):
    assert nbtool.check() == 0, capsys.readouterr().out
    assert " 0 out of sync" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command_and_the_documented_perturbed_run_only():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(make \w+)$", readme, flags=re.M)
    assert "make course" in commands and "make test" in commands
    assert "`make test-perturbed`" in readme
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    steps = [line for line in lines if line and not line.startswith(("#", "set -", "cd "))]
    assert steps == ["make test", "make test-perturbed"]


def dry_run(*args: str) -> list[str]:
    """The commands `make` would run for a fresh clone (every target remade), one per line,
    with the environment's python written as plain `python`."""
    outer = ("VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TORCH_INDEX")   # a bare shell
    env = {k: v for k, v in os.environ.items() if k not in outer}
    done = subprocess.run(["make", "-n", "-B", "BIN=", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return [" ".join(line.split()) for line in done.stdout.replace("\\\n", " ").splitlines()]


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    assert f"\n## {title}\n" in text, f"README has no section '## {title}'"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_without_make_lists_every_command_of_the_learners_and_instructors_targets():
    section = " ".join(readme_section("Without make").split())
    bookkeeping = ("test -x ", "touch ", "echo ")   # the Makefile's own: venv? stamp, notes
    for command in dry_run("course", "test", "doctor", "lab", "workshop-bundle"):
        command = command.replace(" --allow-root", "")   # README: "with --allow-root when root"
        if not command.startswith(bookkeeping):
            assert command in section, f"README's 'Without make' lacks `{command}`"
    assert "python -m venv .venv" in section


def test_nbval_runs_cells_under_the_runners_fast_mode_timeout():
    limit = f"--nbval-cell-timeout={notebooks.CELL_TIMEOUT_FAST_S}"
    for target in ("test", "test-perturbed"):
        nbval = [c for c in dry_run(target) if " --nbval " in c]
        assert len(nbval) == 1 and limit in nbval[0].split(), (target, nbval)


def test_test_time_writes_seconds_cores_and_date_only_for_a_passing_run(tmp_path, capsys):
    test_time = load_script("tools", "test_time")
    out = tmp_path / "test_time.json"
    assert test_time.main([sys.executable, "-c", "raise SystemExit(3)"], out) == 3
    assert not out.exists() and "not written" in capsys.readouterr().out
    assert test_time.main([sys.executable, "-c", "pass"], out) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"seconds", "cores", "date"}
    assert result["seconds"] >= 0 and result["cores"] >= 1


def test_cpu_only_torch_index_reaches_pip_and_the_readme():
    url = "https://download.pytorch.org/whl/cpu"
    pip = [c for c in dry_run("install", f"TORCH_INDEX={url}") if " pip install " in c]
    assert pip == [f'python -m pip install -e ".[test]" --extra-index-url {url}']
    assert [c for c in dry_run("install") if " pip install " in c] == [
        'python -m pip install -e ".[test]"']
    readme = (ROOT / "README.md").read_text()
    assert f"make course TORCH_INDEX={url}" in readme
    assert f"--extra-index-url {url}" in " ".join(readme_section("Without make").split())


def test_floor_pins_are_pyproject_lower_bounds():
    pins = dict(re.findall(r"(\w+)==([\d.]+)",
                           re.search(r"^FLOOR := (.*)$", (ROOT / "Makefile").read_text(),
                                     flags=re.M).group(1)))
    bounds = dict(re.findall(r"^(\w+)>=([\d.]+)", "\n".join(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]), re.M))
    padded = {name: ".".join((bounds[name].split(".") + ["0", "0"])[:3]) for name in pins}
    assert set(pins) == {"torch", "torchvision", "numpy"} and pins == padded


def test_course_runs_copies_into_build_and_leaves_the_notebooks_alone(tmp_path):
    name = "03_reparameterization"
    tracked = {p: p.read_bytes() for p in (ROOT / "notebooks").glob(f"{name}.*")}
    listing = sorted(p.name for p in (ROOT / "notebooks").iterdir())
    out = tmp_path / "build"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "nbtool.py"), "build",
                           "--out", str(out), name], env={**os.environ, "COURSE_FAST": "1"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p: p.read_bytes() for p in tracked} == tracked and len(tracked) == 2
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir()) == listing
    executed = json.loads((out / f"{name}.ipynb").read_text())
    counts = [c["execution_count"] for c in executed["cells"] if c["cell_type"] == "code"]
    assert counts and all(counts)                                # every cell ran, in the copy
    assert "fast mode" in (out / "index.html").read_text()
    assert f'href="{name}.html"' in (out / "index.html").read_text()
    assert (out / f"{name}.html").stat().st_size > 10_000
    assert "build/" in (ROOT / ".gitignore").read_text().split()


def test_system_package_advice_is_one_line_with_the_command(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_CHROMIUM", raising=False)
    monkeypatch.setitem(system.PACKAGES, "chromium", system.Package("tests", lambda: False, "x"))
    ran = []
    monkeypatch.setattr(system.subprocess, "run", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(system.shutil, "which", lambda name: None)             # no apt: a Mac
    assert system.main(["chromium"]) == 0
    assert capsys.readouterr().out == "chromium is not installed (tests): x\n"
    monkeypatch.setattr(system.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000, raising=False)    # no root
    assert system.main(["chromium"]) == 0
    assert capsys.readouterr().out.endswith("run `sudo apt-get install -y chromium`\n")
    assert ran == []                                 # neither case tried to install anything


def test_system_package_installed_as_root_with_apt(monkeypatch, capsys):
    installed = []
    monkeypatch.setitem(system.PACKAGES, "chromium",
                        system.Package("tests", lambda: bool(installed), "x"))
    monkeypatch.setattr(system.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(system.os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setattr(system.subprocess, "run", lambda cmd, **k: installed.append(cmd)
                        or subprocess.CompletedProcess(cmd, 0, "", ""))
    assert system.main(["chromium"]) == 0
    assert installed[0][:2] == ["apt-get", "install"] and installed[0][-1] == "chromium"
    assert capsys.readouterr().out == "chromium: installing with apt-get, for tests\n"
    assert system.main(["no-such-package"]) == 2


def test_a_missing_system_package_skips_here_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget"):
        require(False, "no widget")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no widget .required when CI=true"):
        require(False, "no widget")
    require(True, "no widget")                      # present: nothing happens


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


def test_the_runner_uses_unix_sockets_so_the_kernel_has_no_tcp_warning(tmp_path, capfd,
                                                                        monkeypatch):
    import nbformat

    def run() -> str:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
        notebooks.execute(nb, tmp_path / "tiny.ipynb")
        assert nb.cells[0].outputs[0]["text"] == "42\n"
        return capfd.readouterr().err
    warning = "Kernel is running over TCP without encryption"
    if os.name == "nt":                               # no Unix sockets: TCP, and its warning
        assert notebooks.kernel_sockets() == {"transport": "tcp"}
        return
    assert notebooks.kernel_sockets()["transport"] == "ipc"
    assert warning not in run()
    monkeypatch.setattr(notebooks, "kernel_sockets", lambda: {"transport": "tcp"})
    assert warning in run()                 # the check above can see the kernel's stderr
