"""Tutorial 2: a CNN trained on 5,000 MNIST digits in under a minute, the loop written out.

    .venv/bin/python docs/learn/02_train_a_cnn.py

scratchnet.mnist.training has the full training loop (checkpoints, resuming, schedules); this
one keeps only the four steps every loop has: forward, loss, backward, update.
"""

import time

import numpy as np

import scratchnet as sn
import scratchnet.nn.functional as F
from scratchnet import nn
from scratchnet.mnist.data import load_mnist, normalize

TRAIN_SIZE = 5000
EPOCHS = 3
BATCH_SIZE = 64

start = time.perf_counter()
sn.manual_seed(0)
rng = np.random.default_rng(0)

# --- The data ---------------------------------------------------------------------------------
# load_mnist downloads and verifies the four files once, then reads them as uint8 arrays:
# images (N, 28, 28) and labels (N,). normalize turns pixels into the floats the network
# sees: (pixel / 255 - 0.1307) / 0.3081, shape (N, 1, 28, 28).
mnist = load_mnist(progress=False)
x_train = normalize(mnist.train_images[:TRAIN_SIZE])
y_train = mnist.train_labels[:TRAIN_SIZE]
x_test = normalize(mnist.test_images)
y_test = mnist.test_labels

# --- The model --------------------------------------------------------------------------------
# Two conv blocks, each a 3x3 convolution (padding 1 keeps the size), batch norm, ReLU and a
# 2x2 max-pool that halves the size: 28x28 -> 14x14 -> 7x7. Then one linear layer from the
# 32 * 7 * 7 features to the 10 class scores (logits).
model = nn.Sequential(
    nn.Conv2d(1, 16, kernel_size=3, padding=1),
    nn.BatchNorm2d(16),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, kernel_size=3, padding=1),
    nn.BatchNorm2d(32),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(32 * 7 * 7, 10),
)
optimizer = sn.optim.Adam(model.parameters(), lr=2e-3)
print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")

# --- The loop ---------------------------------------------------------------------------------
for epoch in range(EPOCHS):
    model.train()  # batch norm uses the batch's statistics and updates its running ones
    order = rng.permutation(TRAIN_SIZE)  # a new order each epoch
    total_loss = 0.0
    for lo in range(0, TRAIN_SIZE, BATCH_SIZE):
        batch = order[lo : lo + BATCH_SIZE]
        x = sn.tensor(x_train[batch])
        y = sn.tensor(y_train[batch])

        logits = model(x)  # 1. forward: (B, 10)
        loss = F.cross_entropy(logits, y)  # 2. loss: mean of -log softmax(logits)[y]
        optimizer.zero_grad()  # gradients accumulate (+=), so clear last step's
        loss.backward()  # 3. backward: d loss / d parameter into every p.grad
        optimizer.step()  # 4. update: each parameter moves against its gradient

        total_loss += loss.item() * len(batch)
    print(f"epoch {epoch + 1}: mean training loss {total_loss / TRAIN_SIZE:.4f}")

# --- The test ---------------------------------------------------------------------------------
# eval(): batch norm now uses its running statistics, so a digit's prediction does not depend
# on the others in its batch. no_grad(): nothing will call backward, so record no graph.
model.eval()
correct = 0
with sn.no_grad():
    for lo in range(0, len(x_test), 500):
        logits = model(sn.tensor(x_test[lo : lo + 500]))
        correct += int((logits.data.argmax(axis=1) == y_test[lo : lo + 500]).sum())
accuracy = correct / len(x_test)

print(f"test accuracy: {accuracy:.2%} on {len(x_test):,} digits")
print(f"took {time.perf_counter() - start:.1f} s")
assert accuracy > 0.90, f"a CNN on 5,000 digits should pass 90%, got {accuracy:.2%}"
