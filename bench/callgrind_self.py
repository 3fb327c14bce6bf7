"""Prints instructions per transaction from a callgrind output file, in all
and for the functions with the highest self cost.

Usage: callgrind_self.py FILE TRANSACTIONS [TOP]

callgrind_annotate can attribute all cost to the thread entry point for
binaries with inlined Rust code, so this script reads the file format
directly. Cost lines under `fn=` are the function's own cost. The exception
is the line right after `calls=`, which is the inclusive cost of a call.
"""

import collections
import re
import sys

COMPRESSED_NAME = re.compile(r"\((\d+)\)(?: (.*))?")


class Names:
    """Expands callgrind's compressed names, `(id) name` once and `(id)` later."""

    def __init__(self):
        self.by_id = {}

    def expand(self, text):
        match = COMPRESSED_NAME.match(text)
        if not match:
            return text
        number, name = match.groups()
        if name:
            self.by_id[number] = name
        return self.by_id.get(number, text)


def self_costs(path):
    names = Names()
    costs = collections.Counter()
    function = None
    call_cost_next = False
    with open(path, errors="replace") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("fn="):
                function = names.expand(line[3:])
            elif line.startswith("cfn="):
                names.expand(line[4:])
            elif line.startswith("calls="):
                call_cost_next = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()
                if call_cost_next:
                    call_cost_next = False
                elif function and len(fields) >= 2 and fields[1].isdigit():
                    costs[function] += int(fields[1])
    return costs


def main():
    path, transactions = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    costs = self_costs(path)
    total = sum(costs.values())
    print(f"instructions per transaction: {total // transactions}")
    for function, cost in costs.most_common(top):
        print(f"{cost // transactions:8d}  {100 * cost / total:5.1f}%  {function[:110]}")


if __name__ == "__main__":
    main()
