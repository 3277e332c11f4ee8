"""What the reference scripts share: writing a fixture, and their command line."""
import json
import os
import sys


def write_fixture(folder, name, data):
    """`data` as `<folder>/<name>` (compact JSON and a newline), printing what was written."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as f:
        json.dump(data, f)
        f.write("\n")
    print(f"wrote {os.path.join(folder, name)}")


def run(main, script):
    """`python3 <script> OUTPUT_FOLDER`: main(folder)."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {script} OUTPUT_FOLDER")
    main(sys.argv[1])
