"""Model builders from the course (hw2): ResidualBlock and MLPResNet, returned as nn.Sequential."""
from needle import nn


def ResidualBlock(dim, hidden_dim, norm=nn.BatchNorm1d, drop_prob=0.1, activation=nn.ReLU):
    """Sequential(Residual(Linear-norm-act-Dropout-Linear-norm), act) mapping (N, dim) -> (N, dim);
    `activation` is a module factory (ReLU as in the course)."""
    return nn.Sequential(
        nn.Residual(nn.Sequential(
            nn.Linear(dim, hidden_dim),
            norm(hidden_dim),
            activation(),
            nn.Dropout(drop_prob),
            nn.Linear(hidden_dim, dim),
            norm(dim),
        )),
        activation(),
    )


def MLPResNet(dim, hidden_dim=100, num_blocks=3, num_classes=10, norm=nn.BatchNorm1d, drop_prob=0.1,
              activation=nn.ReLU):
    """Linear-act, num_blocks ResidualBlocks of width hidden_dim // 2, then a Linear classifier."""
    return nn.Sequential(
        nn.Linear(dim, hidden_dim),
        activation(),
        *[ResidualBlock(hidden_dim, hidden_dim // 2, norm, drop_prob, activation) for _ in range(num_blocks)],
        nn.Linear(hidden_dim, num_classes),
    )
