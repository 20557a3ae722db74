#pragma once
// Per-device kernels behind the router auxiliary losses (moe/aux_loss.hpp). The kernels only
// gather statistics and add gradients; the formulas live once, in moe/aux_loss.hpp, so a batch
// spread over ranks (expert parallelism) sums its statistics and reuses them. Pointers marked
// "host" are host memory, all others live on the kernel's device.
//   load_balance_stats(probs [T, n], experts [T, k], T, n, k, counts (host) [n], sums (host) [n])
//       counts[i] += tokens whose first choice is i; sums[i] += sum_t probs[t, i] (in double)
//   add_per_column(per_column (host) [n], rows, n, d [rows, n])      d[t, i] += per_column[i]
//   row_logsumexp(logits [T, n], T, n, lse [T])                       lse[t] = logsumexp(logits[t])
//   add_z_loss_grad(lse [T], probs [T, n], T, n, scale, d [T, n])     d[t, i] += scale * lse[t] * probs[t, i]
#include "nexa/core/shape.hpp"

namespace nexa {

template <class D>
struct AuxLossKernel;

}  // namespace nexa
