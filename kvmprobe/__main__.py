"""python -m kvmprobe"""

from kvmprobe.entry import run

if __name__ == "__main__":
    run()
