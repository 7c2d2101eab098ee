using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Evaluation;

// The Frechet distance between two Gaussians, d² = |μ1 − μ2|² + Tr(Σ1) + Tr(Σ2) − 2 Tr(sqrt(Σ1 Σ2)), as WinTok's
// evaluation computes rFID (examples/eval_tokenizer/eval_metrics_ddp.py @ eb0452e, calculate_frechet_distance:
// scipy.linalg.sqrtm of Σ1·Σ2; if that is not finite, sqrtm of (Σ1 + 1e-6·I)(Σ2 + 1e-6·I); the real part of the trace).
//
// There is no sqrtm in torch. For covariances (symmetric positive semi-definite) Σ1·Σ2 is similar to
// S·Σ2·S with S = Σ1^{1/2}, which is symmetric PSD; so Tr(sqrt(Σ1 Σ2)) = Σ sqrt(λ_i(S Σ2 S)), computed in float64 with
// two eigh calls (torchsharp.md §8). Eigenvalues that round below zero are clamped to 0, matching the real part of
// scipy's principal square root, whose square roots of negative eigenvalues are imaginary.
//
// When scipy's sqrtm is not finite the reference retries with the offset. Here the eigen route is finite whenever the
// inputs are; the offset is applied in the same case (a non-finite trace), so for singular covariances (fewer feature
// vectors than dimensions, or constant features) the two can differ where scipy would have hit exactly singular Schur
// blocks. On full-rank covariances they agree to round-off (the metrics fixture: FeatureStatisticsTests).

/// <summary>Fréchet distance between feature distributions (the FID formula), in float64.</summary>
public static class FrechetDistance
{
    /// <summary>The reference's offset added to both covariances' diagonals when the square root is not finite.</summary>
    public const double SingularOffset = 1e-6;

    /// <summary>The distance between the Gaussians fitted to two feature sets, computed on <paramref name="device"/> (CPU by default).</summary>
    public static double Between(FeatureStatistics first, FeatureStatistics second, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        using var scope = NewDisposeScope();
        var (mean1, covariance1) = first.MeanAndCovariance(device);
        var (mean2, covariance2) = second.MeanAndCovariance(device);
        return Between(mean1, covariance1, mean2, covariance2);
    }

    /// <summary>d² for means (d) and covariances (d, d); computed in float64 on their device.</summary>
    public static double Between(Tensor mean1, Tensor covariance1, Tensor mean2, Tensor covariance2)
    {
        if (!mean1.shape.SequenceEqual(mean2.shape) || !covariance1.shape.SequenceEqual(covariance2.shape)
            || mean1.dim() != 1 || covariance1.dim() != 2 || covariance1.shape[0] != mean1.shape[0] || covariance1.shape[1] != mean1.shape[0])
        {
            throw new ArgumentException(
                $"Means (d) and covariances (d, d) of one d are needed, got [{string.Join(", ", mean1.shape)}], [{string.Join(", ", covariance1.shape)}], " +
                $"[{string.Join(", ", mean2.shape)}], [{string.Join(", ", covariance2.shape)}]");
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (m1, s1, m2, s2) = (mean1.to(float64), covariance1.to(float64), mean2.to(float64), covariance2.to(float64));
        var difference = m1 - m2;
        double traceOfRoot = TraceOfSquareRootOfProduct(s1, s2);
        if (!double.IsFinite(traceOfRoot))
        {
            var offset = eye(s1.shape[0], dtype: float64, device: s1.device).mul(SingularOffset);
            traceOfRoot = TraceOfSquareRootOfProduct(s1 + offset, s2 + offset);
        }
        return difference.dot(difference).item<double>() + s1.trace().item<double>() + s2.trace().item<double>() - 2 * traceOfRoot;
    }

    /// <summary>Tr(sqrt(Σ1 Σ2)) = Σ sqrt(λ(S Σ2 S)), S = Σ1^{1/2}; NaN if an eigen solver does not converge.</summary>
    internal static double TraceOfSquareRootOfProduct(Tensor covariance1, Tensor covariance2)
    {
        using var scope = NewDisposeScope();
        try
        {
            var (values, vectors) = linalg.eigh(Symmetric(covariance1));
            var root = (vectors * values.clamp_min(0).sqrt().unsqueeze(0)).matmul(vectors.t());   // V diag(sqrt λ) Vᵀ
            var inner = linalg.eigvalsh(Symmetric(root.matmul(covariance2).matmul(root)));
            return inner.clamp_min(0).sqrt().sum().item<double>();
        }
        catch (System.Runtime.InteropServices.ExternalException)
        {
            // LAPACK/cuSOLVER report non-convergence (e.g. on NaN input) as an error; scipy would give a non-finite root.
            return double.NaN;
        }
    }

    private static Tensor Symmetric(Tensor matrix) => matrix.add(matrix.t()).div(2);
}
