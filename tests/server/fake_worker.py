"""A stand-in training worker for the server tests (no torch): the local backend starts it
exactly as it starts ``python -m waferdesk.worker``; what it does is the command's first word.

- ``wait``: write its token and arguments into its work folder, then wait (up to 2 minutes);
  the test acts as the worker with that token;
- ``crash``: print some output like a failing import and exit with status 1, reporting nothing;
- ``exit0``: exit 0 without reporting anything.
"""

import json
import os
import sys
import time
from pathlib import Path

mode, args = sys.argv[1], sys.argv[2:]
work = Path(args[args.index("--work-dir") + 1])
print(f"fake worker {mode} for job {args[args.index('--job') + 1]}", flush=True)
(work / "argv.json").write_text(json.dumps({"argv": args, "env_keys": sorted(os.environ)}))
(work / "token.part").write_text(os.environ.get("WAFERDESK_JOB_TOKEN", ""))
(work / "token.part").replace(work / "token")  # last: the tests wait for it
if mode == "crash":
    print("Traceback (most recent call last):", flush=True)
    print('  File "worker.py", line 1, in <module>', flush=True)
    print("ImportError: libcudnn.so.9: cannot open shared object file", flush=True)
    sys.exit(1)
if mode == "exit0":
    sys.exit(0)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    time.sleep(0.1)
