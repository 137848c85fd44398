"""Label augmentation (METHOD.md "Label augmentation"; docs/label_augmentation.md).

    targets.py              EIP energies (aligned on train) and the K+1 class targets
    classifier.py           the K+1 classifier: the potential's representation + pooled head
    classifier_training.py  cross-entropy, slanted triangular rate, best validation accuracy
    selection.py            pool -> selected configurations with EIP labels and confidences
    tukey.py                Tukey's biweight and MSE(DFT) + alpha (N_train/N_added) Tukey(EIP)
    alpha.py                training for one alpha, the search over the grid
    report.py               class balance, confusion matrix, alpha curve, outliers (after training)
    strategy.py             ``strategy: la`` end to end
"""
from .strategy import run_label_augmentation

__all__ = ["run_label_augmentation"]
