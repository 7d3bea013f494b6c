#!/usr/bin/env python3
"""reference_torch.py: PyTorch float64 reference for tests/bench/run_bench.sh.

The same computations as bench_bafu.c, written the way a PyTorch user would:

  a, b  per seed: a random Gaussian ReLU MLP (width 512, depth 64, weights
        N(0, 2/fan_in), inputs N(0, 1), batch 1 or 64), forward, backward with
        autograd from a Gaussian probe b_L ~ N(0, 1/n) (F = <b_L, f_L>), the
        tangent pass along the learning-rate-weighted gradient step
        dW_l = -lr_l grad_l F (lr = 1) with torch.autograd.functional.jvp, and
        per layer cos(theta_l) = <df_l, -b_l> / (|df_l| |b_l|); 16 seeds.
  c     the dense BFK of the last layer, K_l = c_l I + A_l K_{l-1} A_l^T with
        A_l = W_l D_l, width 1024, depth 32, and torch.linalg.eigvalsh.
  d     the ReLU MLP moment recursion (bafu_moments_run, theory/moments.md 2.2)
        and the two-input ReLU angle/NTK recursion (bafu_kernel_two_inputs,
        theory/kernel.md 3) to depth 10^6, as Python loops: on 0-d torch
        tensors (timed on 10^5 layers and scaled by 10, reported as such) and on
        Python floats (the full 10^6).

Output: "key value unit [note]" lines, like bench_bafu. One thread
(torch.set_num_threads(1)); float64 throughout.
"""
import math
import sys
import time

try:
    import torch
except ImportError:
    sys.stderr.write("reference_torch.py: PyTorch is not installed "
                     "(Debian: apt-get install -y python3-torch)\n")
    sys.exit(3)

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)


def mlp_draw(gen, n, depth, m):
    x = torch.randn(n, m, generator=gen)
    Ws = [torch.randn(n, n, generator=gen) * math.sqrt(2.0 / n) for _ in range(depth)]
    probe = torch.randn(n, m, generator=gen) / math.sqrt(n)
    return x, Ws, probe


def features(Ws, x):
    fs = []
    g = x
    for l, W in enumerate(Ws):
        f = W @ g
        fs.append(f)
        g = torch.relu(f)
    return fs


def mc_once(n, depth, m, seeds):
    gen = torch.Generator().manual_seed(1)
    cos = torch.zeros(seeds, depth)
    idres = 0.0
    t0 = time.perf_counter()
    for s in range(seeds):
        x, Ws, probe = mlp_draw(gen, n, depth, m)
        Ws = [W.requires_grad_(True) for W in Ws]
        fs = features(Ws, x)
        F = (probe * fs[-1]).sum()
        grads = torch.autograd.grad(F, Ws + fs)
        gW, bs = grads[:depth], grads[depth:]
        v = tuple(-g for g in gW)  # lr = 1 for every layer
        _, dfs = torch.autograd.functional.jvp(lambda *W: tuple(features(W, x)),
                                               tuple(W.detach() for W in Ws), v)
        D = 0.0
        for l in range(depth):
            b, df = bs[l], dfs[l]
            ip = -(b * df).sum()
            cos[s, l] = ip / (df.norm() * b.norm())
            D += float((gW[l] * gW[l]).sum())
            idres = max(idres, abs(float(ip) - D) / D)
    return time.perf_counter() - t0, cos, idres


def mc(n, depth, m, seeds, reps):
    """The fastest of reps runs (as bench_bafu.c), same seeds each time."""
    t = float("inf")
    for _ in range(reps):
        tr, cos, idres = mc_once(n, depth, m, seeds)
        t = min(t, tr)
    mean = cos.mean(0)
    se = cos.std(0) / math.sqrt(seeds)
    print("torch_mc %.4f s seeds=%d best_of=%d cos_theta[1]=%.6f cos_theta[%d]=%.6f(se %.2g) idres_max=%.2g"
          % (t, seeds, reps, mean[0], depth, mean[-1], se[-1], idres))
    print("torch_mc_cos_layers " + " ".join("%d:%.5f:%.2g" % (l + 1, mean[l], se[l])
                                            for l in range(0, depth, 9)))


def relu_omc(th):
    """1 - c' for the ReLU correlation map at angle th (theory/kernel.md 3)."""
    h = math.sin(0.5 * th)
    if th < 0.5:  # sin th - th cos th = sum_k (-1)^(k+1) 2k th^(2k+1)/(2k+1)!
        term, g, t2 = th, 0.0, th * th
        for k in range(1, 30):
            term *= t2 / ((2.0 * k) * (2.0 * k + 1))
            g += (-2.0 * k if k % 2 == 0 else 2.0 * k) * term
    else:
        g = math.sin(th) - th * math.cos(th)
    return 2 * h * h - g / math.pi


def theory_floats(L, n=512.0, s=2.0, corr=0.5):
    # moments (ReLU: phi2 = q/2, dphi2 = dphi4 = 1/2)
    t0 = time.perf_counter()
    q = 1.0
    m1 = n  # layer 1: c = lr |x|^2 = d = n
    m2 = n * n
    cosL = 0.0
    for _ in range(2, L + 1):
        phi2, d2, d4 = 0.5 * q, 0.5, 0.5
        t1, tt2 = s * d2, s * s * (d2 * d2 + d4)
        c = n * phi2
        a, b = m1, m2
        m1 = c + t1 * a
        m2 = c * c + 2 * c * t1 * a + tt2 * a * a + t1 * t1 * (b - a * a)
        q = s * phi2
        cosL = m1 / math.sqrt(m2)
    tm = time.perf_counter() - t0
    # two-input kernel (angle form), forward then backward factor products
    t0 = time.perf_counter()
    th = math.acos(corr)
    q = s
    nd, no = n, n * corr
    fac = [0.0] * (2 * L)
    for j in range(1, L):
        omc_phi = relu_omc(th)
        e_d, e_o = 0.5 * q, 0.5 * q * (1 - omc_phi)
        sp_d, sp_o = s * 0.5, s * (math.pi - th) / (2 * math.pi)
        q = s * e_d
        th = 2 * math.asin(math.sqrt(0.5 * omc_phi)) if omc_phi < 2 else math.pi
        nd = n * e_d + sp_d * nd
        no = n * e_o + sp_o * no
        fac[2 * j], fac[2 * j + 1] = sp_d, sp_o
    pd = po = 1.0
    for j in range(L - 1, -1, -1):
        pd *= fac[2 * j]
        po *= fac[2 * j + 1]
    tk = time.perf_counter() - t0
    return tm, tk, cosL, 2 * math.sin(0.5 * th) ** 2, no / nd


def theory_tensors(L, n=512.0, s=2.0):
    """The moment recursion on 0-d tensors (what a torch port would run)."""
    t0 = time.perf_counter()
    q = torch.tensor(1.0)
    m1, m2 = torch.tensor(n), torch.tensor(n * n)
    for _ in range(2, L + 1):
        phi2 = 0.5 * q
        t1, tt2 = s * 0.5, s * s * 0.75
        c = n * phi2
        a, b = m1, m2
        m1 = c + t1 * a
        m2 = c * c + 2 * c * t1 * a + tt2 * a * a + t1 * t1 * (b - a * a)
        q = s * phi2
    return time.perf_counter() - t0, float(m1 / torch.sqrt(m2))


def spectrum(n=1024, depth=32):
    gen = torch.Generator().manual_seed(1)
    x, Ws, probe = mlp_draw(gen, n, depth, 1)
    t0 = time.perf_counter()
    g = x
    K = torch.eye(n) * float((x * x).sum())  # layer 1: lr |x|^2 I
    f = Ws[0] @ g
    for W in Ws[1:]:
        g = torch.relu(f)
        d = (f > 0).double().reshape(1, n)
        A = W * d  # W D
        K = float((g * g).sum()) * torch.eye(n) + A @ K @ A.T
        f = W @ g
    ev = torch.linalg.eigvalsh(K)
    t = time.perf_counter() - t0
    print("torch_spectrum_dense %.4f s ev_max=%.6g" % (t, float(ev[-1])))


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "a"
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    reps = max(1, int(sys.argv[3])) if len(sys.argv) > 3 else 3
    if what == "a":
        mc(512, 64, 1, seeds, reps)
    elif what == "b":
        mc(512, 64, 64, seeds, reps)
    elif what == "d":
        L = 1000000
        tm, tk, cosL, omcL, ntkc = theory_floats(L)
        print("py_moments_1e6 %.4f s cos_theta[L]=%.10g" % (tm, cosL))
        print("py_kernel2_1e6 %.4f s one_minus_corr[L]=%.10g ntk_corr[L]=%.10g" % (tk, omcL, ntkc))
        tt, c = theory_tensors(L // 10)
        print("torch_moments_1e6 %.4f s (timed on 1e5 layers x 10) cos_theta[1e5]=%.10g" % (10 * tt, c))
    elif what == "c":
        spectrum()
    else:
        sys.stderr.write("reference_torch.py: unknown workload %s\n" % what)
        sys.exit(2)


if __name__ == "__main__":
    main()
