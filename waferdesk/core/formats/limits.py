"""Limits that keep hostile or broken files from exhausting memory or time.

Real wafer maps are at most a few hundred dies across and a lot holds 25 wafers; the limits
sit far above that and far below what would hurt a fab PC.
"""

MAX_FILE_BYTES = 2 * 1024**3  # refuse files larger than 2 GiB outright
MAX_SIDE = 4096  # dies per side of one map
MAX_DIES_TOTAL = 1_500_000_000  # dies across all maps in one file (1.4 GB of uint8)
MAX_WAFERS = 5_000_000
MAX_MEMBER_RATIO = 2000  # zip member: refuse more than this uncompressed:compressed (zip bombs)

# Per-format limits (text and XML are parsed in memory, so they get smaller caps than binary files).
MAX_XML_BYTES = 64 * 1024**2  # a 300x300-die G85 map is well under 1 MB; a DOM costs ~10x the file
MAX_TEXT_BYTES = 256 * 1024**2  # CSV die lists: ~15 bytes a die, so ~17 million dies
MAX_PICKLE_BYTES = 4 * 1024**3  # WM-811K's LSWMD.pkl is about 2 GB
MAX_COORD = 1_000_000  # |x|, |y| of a die in a die list; the span per wafer is also limited to MAX_SIDE
MAX_NPZ_MEMBER_BYTES = MAX_DIES_TOTAL  # the largest array an npz member may expand to
