"""Launched by test_train.py under torchrun: trains through the book's command line, then saves
this rank's final parameters so the test can compare the ranks."""
import os
import sys

import torch

from helpers import train

out = sys.argv[1]
result = train.main(sys.argv[2:])
params = torch.cat([p.detach().flatten() for p in result.model.parameters()])
torch.save({"params": params, "history": result.history}, os.path.join(out, f"rank{os.environ['RANK']}.pt"))
