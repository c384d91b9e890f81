"""Detection metrics (AUROC, AP, accuracy, TPR@FPR, EER) and evaluation reports."""
