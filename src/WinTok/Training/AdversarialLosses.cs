using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Training;

/// <summary>The discriminator criterion (<c>dcrit</c>); used as <c>crit(real) + crit(-fake)</c>.</summary>
public enum DiscriminatorCriterion
{
    /// <summary>'hg': <c>mean(relu(1 - logits))</c>, the reference's choice.</summary>
    Hinge,

    /// <summary>'sp': <c>mean(softplus(-logits))</c>.</summary>
    Softplus,

    /// <summary>'ln': <c>mean(-logits)</c>.</summary>
    Linear,
}

/// <summary>The reference's GAN loss functions (models/modules/loss.py).</summary>
internal static class AdversarialLosses
{
    public static Tensor Criterion(DiscriminatorCriterion criterion, Tensor logits) => criterion switch
    {
        DiscriminatorCriterion.Hinge => WithScope(() => (1 - logits).relu().mean()),
        DiscriminatorCriterion.Softplus => WithScope(() => F.softplus(logits.neg()).mean()),
        DiscriminatorCriterion.Linear => WithScope(() => logits.neg().mean()),
        _ => throw new ArgumentOutOfRangeException(nameof(criterion), criterion, null),
    };

    private static Tensor WithScope(Func<Tensor> loss)
    {
        using var scope = NewDisposeScope();
        return loss().MoveToOuterDisposeScope();
    }
}

/// <summary>
/// LeCAM regularisation (Tseng et al., "Regularizing Generative Adversarial Networks under Limited Data", 2021;
/// reference trainer.py <c>LeCAM_EMA</c>, <c>lecam_reg</c>): exponential moving averages of the batch-mean real and
/// fake logits, kept as float64 host numbers, updated before use, and the penalty
/// <c>mean(relu(real - ema_fake)^2) + mean(relu(ema_real - fake)^2)</c>. The reference does not checkpoint the EMAs;
/// <see cref="Real"/> and <see cref="Fake"/> are part of our trainer state so a resume continues exactly.
/// </summary>
public sealed class LecamEma(double decay = 0.999)
{
    public double Decay { get; } = decay;

    public double Real { get; private set; }

    public double Fake { get; private set; }

    /// <summary>Folds the batch means in (one host sync each, as the reference's <c>.item()</c>).</summary>
    public void Update(Tensor realLogits, Tensor fakeLogits)
    {
        using var scope = NewDisposeScope();
        Real = Real * Decay + realLogits.mean().item<float>() * (1 - Decay);
        Fake = Fake * Decay + fakeLogits.mean().item<float>() * (1 - Decay);
    }

    public Tensor Regularizer(Tensor realLogits, Tensor fakeLogits)
    {
        using var scope = NewDisposeScope();
        var real = F.relu(realLogits - Fake).pow(2).mean();
        var fake = F.relu(Real - fakeLogits).pow(2).mean();
        return (real + fake).MoveToOuterDisposeScope();
    }

    public void Restore(double real, double fake) => (Real, Fake) = (real, fake);
}
