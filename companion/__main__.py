"""python -m companion doctor | lab-settings | core-notebooks [FOLDER]

    doctor          check this machine for the workshop, one line per check (make doctor)
    lab-settings    switch off JupyterLab's news prompt in this environment (make install)
    core-notebooks  the notebooks on the workshop path (in FOLDER, default the repository's
                    notebooks/), one name a line
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if argv == ["doctor"]:
        from companion import doctor
        return doctor.main()
    if argv == ["lab-settings"]:
        from companion import lab_settings
        print(f"JupyterLab's settings for the course are in {lab_settings.install()}")
        return 0
    if argv[:1] == ["core-notebooks"] and len(argv) <= 2:
        from companion.doctor import core_notebooks
        print("\n".join(core_notebooks(Path(argv[1]) if argv[1:] else None)))
        return 0
    print(__doc__.strip(), file=sys.stderr)
    return 0 if argv in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
