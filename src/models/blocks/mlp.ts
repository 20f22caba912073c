/** The transformer's feed-forward block: Linear → GELU → Linear (Swin, ViT, SwinUNETR names fc1/fc2). */
import { nn, tidy, type Tensor } from '../../engine/index.ts';

export class Mlp extends nn.Module {
  readonly fc1: nn.Linear;
  readonly act: nn.GELU;
  readonly fc2: nn.Linear;

  constructor(dim: number, hidden: number, outDim = dim) {
    super();
    this.fc1 = this.register('fc1', new nn.Linear(dim, hidden));
    this.act = this.register('act', new nn.GELU());
    this.fc2 = this.register('fc2', new nn.Linear(hidden, outDim));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.act.forward(this.fc1.forward(x))));
  }
}
