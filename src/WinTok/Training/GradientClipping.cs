using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>torch's <c>clip_grad_norm_</c> (2-norm), op by op, so the returned norm and the scaled gradients match it.</summary>
internal static class GradientClipping
{
    /// <summary>
    /// Scales the gradients of <paramref name="parameters"/> so that their joint 2-norm is at most
    /// <paramref name="maxNorm"/> and returns the norm before clipping. As torch: the norm of the per-tensor norms,
    /// the coefficient <c>max_norm / (norm + 1e-6)</c> (Python evaluates it as <c>reciprocal(norm + 1e-6) * max_norm</c>),
    /// clamped to 1 and multiplied into every gradient even when it is 1. Returns 0 when no parameter has a gradient.
    /// </summary>
    public static float ClipGradNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var grads = parameters.Select(p => p.grad).OfType<Tensor>().ToList();
        if (grads.Count == 0) return 0f;
        var norms = grads.Select(g => linalg.vector_norm(g, 2)).ToArray();
        var total = linalg.vector_norm(stack(norms), 2);
        var coefficient = (total + 1e-6).reciprocal().mul(maxNorm).clamp_max(1.0);
        foreach (var grad in grads) grad.mul_(coefficient);
        return total.item<float>();
    }

    /// <summary>The joint 2-norm of the gradients, without changing them.</summary>
    public static float GradNorm(IEnumerable<Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var norms = parameters.Select(p => p.grad).OfType<Tensor>().Select(g => linalg.vector_norm(g, 2)).ToArray();
        return norms.Length == 0 ? 0f : linalg.vector_norm(stack(norms), 2).item<float>();
    }
}
