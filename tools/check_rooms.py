#!/usr/bin/env python3
"""Checks the one rule of include/gptx's rooms: a header includes headers of its own room or of
rooms listed before it (docs/ARCHITECTURE.md, "Rooms"). Prints each back-edge; exits 1 if any."""
import pathlib
import re
import sys

ROOMS = ["core", "simd", "ops", "nn", "text", "data", "generate", "train", "io", "dist", "recipes"]

def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
    inc = root / "include" / "gptx"
    bad = 0
    for header in sorted(inc.glob("*/*.hpp")):
        room = header.parent.name
        if room not in ROOMS:
            print(f"{header.relative_to(root)}: room '{room}' is not in the list of rooms")
            bad += 1
            continue
        for n, line in enumerate(header.read_text().splitlines(), 1):
            m = re.match(r'\s*#\s*include\s+"\.\./(\w+)/', line)
            if m and (m.group(1) not in ROOMS or ROOMS.index(m.group(1)) > ROOMS.index(room)):
                print(f"{header.relative_to(root)}:{n}: {room}/ includes {m.group(1)}/, "
                      f"a room listed after it ({' < '.join(ROOMS)})")
                bad += 1
    print(f"{bad} back-edge(s)" if bad else "rooms: every include points down")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())
