"""Limits that keep hostile or broken files from exhausting memory or time.

Real wafer maps are at most a few hundred dies across and a lot holds 25 wafers; the limits
sit far above that and far below what would hurt a fab PC.
"""

MAX_FILE_BYTES = 2 * 1024**3  # refuse files larger than 2 GiB outright
MAX_SIDE = 4096  # dies per side of one map
MAX_DIES_TOTAL = 1_500_000_000  # dies across all maps in one file (1.4 GB of uint8)
MAX_WAFERS = 5_000_000
MAX_MEMBER_RATIO = 2000  # zip member: refuse more than this uncompressed:compressed (zip bombs)
