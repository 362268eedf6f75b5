"""Training helpers from the course (hw2): one epoch over a loader, and MNIST training end to end."""
import os
from contextlib import nullcontext

import numpy as np

from needle import data, nn, optim
from needle.autograd import no_grad
from needle.models import MLPResNet


def epoch(dataloader, model, opt=None):
    """One pass over dataloader -> (error rate, mean loss per sample); trains when opt is given.

    Unlike the course skeleton this does not reseed numpy: seeding belongs to the caller
    (otherwise every epoch would shuffle and drop out identically).
    """
    loss_fn = nn.SoftmaxLoss()
    model.train() if opt is not None else model.eval()
    with nullcontext() if opt is not None else no_grad():  # evaluation needs no graph
        return _run_epoch(dataloader, model, loss_fn, opt)


def _run_epoch(dataloader, model, loss_fn, opt):
    """The loop of epoch(): -> (error rate, mean loss per sample)."""
    errors, loss_sum, seen = 0, 0.0, 0
    for X, y in dataloader:
        logits = model(X)  # (B, classes)
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward()
            opt.step()
        labels = y.numpy()
        errors += int(np.sum(logits.numpy().argmax(axis=1) != labels))
        loss_sum += float(loss.numpy()) * len(labels)  # loss is a batch mean: weight by batch size
        seen += len(labels)
    if seen == 0:
        raise ValueError("epoch() got an empty dataloader")
    return errors / seen, loss_sum / seen


def train_mnist(batch_size=100, epochs=10, optimizer=optim.Adam, lr=0.001, weight_decay=0.001,
                hidden_dim=100, data_dir="data"):
    """Train an MLPResNet on MNIST in data_dir -> (train error, train loss, test error, test loss)."""
    np.random.seed(4)
    train_set = data.MNISTDataset(os.path.join(data_dir, "train-images-idx3-ubyte.gz"),
                                  os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
    test_set = data.MNISTDataset(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"),
                                 os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"))
    train_loader = data.DataLoader(train_set, batch_size, shuffle=True)
    test_loader = data.DataLoader(test_set, batch_size)
    model = MLPResNet(train_set.images.shape[1], hidden_dim=hidden_dim)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    train_err, train_loss = None, None
    for _ in range(epochs):
        train_err, train_loss = epoch(train_loader, model, opt)
    test_err, test_loss = epoch(test_loader, model)
    return train_err, train_loss, test_err, test_loss
