"""The MNIST application built on the scratchnet library, as torchvision is built on torch.

    data       download, verify and load the four MNIST files; the DataLoader and the split
    augment    the training augmentation (random affine warps, a Numba kernel)
    imageprep  any picture -> a 28x28 digit prepared the way MNIST's own digits were
    models     the two classifiers (linear and CNN) and the bundled checkpoints in pretrained/
    train      `python -m scratchnet.train`: recipes, the training loop, checkpoints
    predict    `python -m scratchnet.predict`: pictures -> predictions
    report     evaluation, the confusion matrix and the plots of a run

Nothing in the library (scratchnet.tensor, ops, nn, optim, kernels, runtime) imports from here.
"""
