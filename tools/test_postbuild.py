"""Run postBuild as repo2docker would, in a fresh virtual environment in a temporary folder.

    python3 tools/test_postbuild.py [--keep] [--notebooks 02_vae_theory]   # make test-postbuild

repo2docker builds an image in three steps this script imitates: it installs environment.yml's
pip section (with `-e .`) into the image's environment, copies the repository, and runs
postBuild from it. Here the environment is a new venv, the repository a copy of this work tree
(tracked and untracked files, not the ignored ones: no data/, no .venv), and postBuild trains
the models of the notebooks given (one short one by default; the image trains every core
notebook's, about 25 minutes on 2 cores). Downloads from the datasets' own hosts are off
(COURSE_OFFLINE=1), as on a machine that reaches only the package registries. Then it checks
what a container of the image would see, through `start`: `python -m companion doctor` from
another folder, as a learner's notebook runs it. The exit status is 0 when all of it worked.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def step(what: str, command: list[str], **kwargs) -> None:
    start = time.perf_counter()
    print(f"--- {what}: {' '.join(command)}", flush=True)
    subprocess.run(command, check=True, **kwargs)
    print(f"--- {what}: {time.perf_counter() - start:.0f} s", flush=True)


def copy_work_tree(target: Path) -> None:
    """The files git tracks or would track (not the ignored ones), as they are now."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)


def pip_section() -> list[str]:
    """environment.yml's pip requirements, as repo2docker hands them to pip."""
    text = (ROOT / "environment.yml").read_text().split("- pip:")[1]
    return re.findall(r"^\s+- (\S.*?)\s*$", text, flags=re.M)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--notebooks", default="02_vae_theory",
                        help="what postBuild trains (POSTBUILD_NOTEBOOKS)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="postbuild-"))
    repo, venv = folder / "repo", folder / "env"
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "VIRTUAL_ENV": str(venv), "NB_PYTHON_PREFIX": str(venv), "COURSE_OFFLINE": "1",
           "POSTBUILD_NOTEBOOKS": args.notebooks}
    for name in ("COURSE_DATA", "COURSE_FAST", "PYTHONPATH"):
        env.pop(name, None)
    try:
        copy_work_tree(repo)
        step("environment", [sys.executable, "-m", "venv", str(venv)])
        (folder / "requirements.txt").write_text("\n".join(pip_section()) + "\n")   # as conda does
        step("environment.yml", ["python", "-m", "pip", "install", "-q", "-r",
                                 str(folder / "requirements.txt")], cwd=repo, env=env)
        step("postBuild", ["bash", "postBuild"], cwd=repo, env=env)
        elsewhere = folder / "learner"
        elsewhere.mkdir()
        step("doctor", [str(repo / "start"), "python", "-m", "companion", "doctor"],
             cwd=elsewhere, env=env)
    except subprocess.CalledProcessError as err:
        print(f"test-postbuild FAILED at: {' '.join(map(str, err.cmd))}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"kept {folder}")
    print(f"test-postbuild passed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
