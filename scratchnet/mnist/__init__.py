"""The MNIST application built on the scratchnet library, as torchvision is built on torch.

    data        download, verify and load the four MNIST files; normalize; the DataLoader and
                the seeded split
    augment     the training augmentation: random affine warps, and RobustAugment (stroke
                width, elastic distortion, blur, low resolution) for --augment-extra
    imageprep   any picture -> a 28x28 digit prepared the way MNIST's own digits were
    models      the two classifiers (linear and CNN), their option table, load_model, and the
                bundled checkpoints in pretrained/
    inference   the one inference path: prepared digits -> normalize -> logits -> Prediction
    training    the one training loop (RunState and its steps), for scratchnet or torch
    train       `python -m scratchnet.train`: recipes and the command line
    predict     `python -m scratchnet.predict`: pictures -> predictions (and --explain)
    explain     what a model computed for one drawing: activations, saliency, templates
    export      `python -m scratchnet.export`: ONNX and safetensors
    robustness  `python -m scratchnet.robustness`: accuracy under named transformations
    report      evaluation, the confusion matrix and the plots of a run

Nothing in the library (scratchnet.tensor, ops, nn, optim, kernels, runtime) imports from here.
"""
