"""Average checkpoints (weights only) into one file that translates like any checkpoint.

python scripts/average.py RUN_DIR/checkpoints/step_*.pt --output averaged.pt
python scripts/average.py RUN_DIR --best 5 --output averaged.pt    # the run's 5 best kept
"""

from seq2seq.cli.commands import average_main

if __name__ == "__main__":
    average_main()
