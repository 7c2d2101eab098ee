namespace WinTok.Training;

/// <summary>
/// What one training iteration computed, as plain numbers (the reference logs the same terms). Adversarial terms are
/// null while the discriminator is off; gradient norms are null on iterations that do not step.
/// </summary>
public sealed record TrainStepResult
{
    public required long Iteration { get; init; }

    /// <summary>Whether the optimizers stepped after this iteration (gradient accumulation boundary).</summary>
    public required bool Stepping { get; init; }

    /// <summary>Whether the discriminator and the adversarial loss ran (its warm-up schedule was positive).</summary>
    public required bool DiscriminatorActive { get; init; }

    /// <summary>The generator groups' learning rates (decayed group first), as set for this iteration.</summary>
    public required IReadOnlyList<double> GeneratorLearningRates { get; init; }

    /// <summary>The discriminator groups' learning rates; null before the discriminator's schedule starts.</summary>
    public required IReadOnlyList<double>? DiscriminatorLearningRates { get; init; }

    public required double DiscriminatorWarmup { get; init; }

    public required double BlurFade { get; init; }

    public required double L1 { get; init; }

    public required double L2 { get; init; }

    /// <summary>Null when LPIPS did not run (weight 0 or images below its minimum resolution).</summary>
    public required double? Lpips { get; init; }

    /// <summary><c>l1 L1 + l2 L2 + lp LPIPS</c>.</summary>
    public required double Lnll { get; init; }

    /// <summary>VQ loss, mean over codebooks.</summary>
    public required double Lq { get; init; }

    /// <summary>Entropy loss, mean over codebooks.</summary>
    public required double Le { get; init; }

    public required double Ldistill { get; init; }

    /// <summary>Percent of codes used in this batch, mean over codebooks.</summary>
    public required double CodebookUsage { get; init; }

    /// <summary>The generator's adversarial loss <c>-mean D(aug(rec))</c>.</summary>
    public double? Lg { get; init; }

    /// <summary>Norm of <c>d Lnll / d conv_out.weight</c> (numerator of the adaptive weight).</summary>
    public double? AdaptiveGradNormNll { get; init; }

    /// <summary>Norm of <c>d Lg / d conv_out.weight</c> (denominator, before adding 1e-6).</summary>
    public double? AdaptiveGradNormG { get; init; }

    /// <summary>The adversarial weight actually applied: warm-up times ld times the bounded adaptive weight.</summary>
    public double? WeiG { get; init; }

    /// <summary>The generator loss before the accumulation factor.</summary>
    public required double LvTotal { get; init; }

    public double? DHingeReal { get; init; }

    public double? DHingeFake { get; init; }

    public double? LecamReg { get; init; }

    /// <summary>The LeCAM EMAs after this iteration's update.</summary>
    public double? LecamEmaReal { get; init; }

    public double? LecamEmaFake { get; init; }

    /// <summary>Criterion plus LeCAM, before BCR (the reference logs it as <c>Ldisc</c>).</summary>
    public double? LdHingePlusLecam { get; init; }

    public double? BcrMseReal { get; init; }

    public double? BcrMseFake { get; init; }

    public double? Lbcr { get; init; }

    /// <summary>The discriminator loss before the accumulation factor.</summary>
    public double? LdTotal { get; init; }

    /// <summary>Percent of real logits above 0.</summary>
    public double? AccReal { get; init; }

    /// <summary>Percent of fake logits below 0.</summary>
    public double? AccFake { get; init; }

    /// <summary><c>clip_grad_norm_</c>'s return value for the generator (the norm before clipping), on stepping iterations.</summary>
    public double? GeneratorGradNorm { get; init; }

    /// <summary>The same for the discriminator, on stepping iterations while it is active.</summary>
    public double? DiscriminatorGradNorm { get; init; }

    /// <summary>The quantizer's ids of this batch, (B, K, L) flattened row-major: an argmax flip shows here first.</summary>
    public required long[] PixelTokenIds { get; init; }

    /// <summary>
    /// The iteration's losses, rates and norms by name, for logs and dashboards: every term that ran, the first
    /// (decayed) group's learning rate of each model (<c>lr</c>, <c>disc_lr</c>) and the gradient norms of stepping
    /// iterations. Terms that did not run are absent.
    /// </summary>
    public IReadOnlyDictionary<string, double> Scalars()
    {
        var values = new Dictionary<string, double>
        {
            ["L1"] = L1, ["L2"] = L2, ["Lnll"] = Lnll, ["Lq"] = Lq, ["Le"] = Le, ["Ldistill"] = Ldistill, ["LvTotal"] = LvTotal,
            ["CodebookUsage"] = CodebookUsage, ["lr"] = GeneratorLearningRates[0],
        };
        foreach (var (name, value) in new (string, double?)[]
        {
            ("Lpips", Lpips), ("Lg", Lg), ("WeiG", WeiG), ("DHingeReal", DHingeReal), ("DHingeFake", DHingeFake), ("LecamReg", LecamReg),
            ("Lbcr", Lbcr), ("LdTotal", LdTotal), ("AccReal", AccReal), ("AccFake", AccFake), ("GeneratorGradNorm", GeneratorGradNorm),
            ("DiscriminatorGradNorm", DiscriminatorGradNorm), ("disc_lr", DiscriminatorLearningRates?[0]),
        })
        {
            if (value is { } v) values[name] = v;
        }
        return values;
    }
}
