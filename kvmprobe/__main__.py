"""python -m kvmprobe"""

from kvmprobe.cli import main

main(prog_name="kvmprobe")
