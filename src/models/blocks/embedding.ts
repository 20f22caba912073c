/** The diffusion timestep's sinusoidal embedding (DDPM, MONAI's get_timestep_embedding), shared by every denoiser. */
import { arange, cat, tidy, type Tensor } from '../../engine/index.ts';

/** Sinusoidal timestep embedding [cos(t·f_k), sin(t·f_k)], f_k = exp(−ln(10⁴)·k/half), in float32. */
export function timestepEmbedding(timesteps: Tensor, dim: number, maxPeriod = 10000): Tensor {
  return tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = arange(0, half, 1).mul(-Math.log(maxPeriod)).div(half).exp();
    const args = timesteps.float().unsqueeze(1).mul(freqs.unsqueeze(0));
    const emb = cat([args.cos(), args.sin()], -1);
    return dim % 2 === 1 ? cat([emb, emb.narrow(1, 0, 1).mul(0)], -1) : emb;
  });
}
