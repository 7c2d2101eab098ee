using System.Globalization;
using System.Text.Json;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>
/// How the adaptive GAN weight <c>w = |grad Lnll| / (|grad Lg| + 1e-6)</c> is bounded (the reference's <c>gada</c>
/// modulo 10).
/// </summary>
public enum AdaptiveWeightBound
{
    /// <summary>0: clamp to [0, 1e4].</summary>
    Clamp0To1e4 = 0,

    /// <summary>1: clamp to [0.015, 1e4], the reference's default.</summary>
    Clamp0015To1e4 = 1,

    /// <summary>2: clamp to [0.1, 10].</summary>
    Clamp01To10 = 2,

    /// <summary>3: clamp to [0, 1e4], then the square root.</summary>
    SqrtOfClamp0To1e4 = 3,

    /// <summary>4: clamp to [0.015, 1.5].</summary>
    Clamp0015To15 = 4,
}

/// <summary>
/// Everything the WinTok trainer needs beyond the networks: loss weights, optimizers, schedule and precision. Defaults
/// are the reference's <c>utils/config.py</c> values (spec section 4); names in brackets are the reference's args.
/// </summary>
public sealed record TrainingOptions(TrainingSchedule Schedule)
{
    /// <summary>[l1] weight of the L1 reconstruction loss.</summary>
    public double L1Weight { get; init; } = 0.2;

    /// <summary>[l2] weight of the MSE reconstruction loss.</summary>
    public double L2Weight { get; init; } = 1.0;

    /// <summary>[lp] weight of LPIPS; 0 skips the perceptual network.</summary>
    public double LpipsWeight { get; init; } = 1.0;

    /// <summary>[lpr] LPIPS runs only on images at least this tall.</summary>
    public int LpipsMinResolution { get; init; } = 48;

    /// <summary>[lq] weight of the VQ loss.</summary>
    public double QuantWeight { get; init; } = 1.0;

    /// <summary>[le] weight of the entropy loss (the quantizer computes it only when the model's own <c>le</c> is positive).</summary>
    public double EntropyWeight { get; init; } = 0.1;

    /// <summary>[ldistill] weight of the cosine distillation to the teacher's pooled output.</summary>
    public double DistillWeight { get; init; } = 1.0;

    /// <summary>[ld] base weight of the adversarial loss; positive also turns the adaptive weight on.</summary>
    public double DiscriminatorWeight { get; init; } = 0.5;

    /// <summary>[gada] bound of the adaptive weight.</summary>
    public AdaptiveWeightBound AdaptiveWeight { get; init; } = AdaptiveWeightBound.Clamp0015To1e4;

    /// <summary>[dcrit] the discriminator criterion.</summary>
    public DiscriminatorCriterion Criterion { get; init; } = DiscriminatorCriterion.Hinge;

    /// <summary>[llecam] weight of the LeCAM regulariser; 0 turns it off.</summary>
    public double LecamWeight { get; init; } = 0.05;

    /// <summary>[bcr] weight of the consistency regulariser; 0 turns it off.</summary>
    public double BcrWeight { get; init; } = 4.0;

    /// <summary>[bcr_cut] cutout fraction of BCR's strong augmentation.</summary>
    public double BcrCutout { get; init; } = 0.2;

    /// <summary>[disc_aug_prob] probability of each DiffAug augmentation for the discriminator's inputs.</summary>
    public double DiscriminatorAugmentProbability { get; init; } = 1.0;

    /// <summary>Cutout fraction of the discriminator's DiffAug (fixed at 0.2 in the reference trainer).</summary>
    public double DiscriminatorCutout { get; init; } = 0.2;

    /// <summary>[lr] generator base learning rate.</summary>
    public double LearningRate { get; init; } = 2e-4;

    /// <summary>[wd] generator weight decay.</summary>
    public double WeightDecay { get; init; } = 0.02;

    /// <summary>[disc_lr] discriminator base learning rate.</summary>
    public double DiscriminatorLearningRate { get; init; } = 1e-5;

    /// <summary>[disc_wd] discriminator weight decay.</summary>
    public double DiscriminatorWeightDecay { get; init; } = 0.2;

    /// <summary>[optim_beta] generator AdamW betas.</summary>
    public (double Beta1, double Beta2) Betas { get; init; } = (0.9, 0.95);

    /// <summary>[disc_optim_beta] discriminator AdamW betas.</summary>
    public (double Beta1, double Beta2) DiscriminatorBetas { get; init; } = (0.5, 0.9);

    /// <summary>[optim_eps] AdamW eps of both optimizers.</summary>
    public double OptimizerEps { get; init; } = 1e-6;

    /// <summary>[grad_clip] max 2-norm of each model's gradients before every step; 0 turns clipping off.</summary>
    public double GradientClip { get; init; } = 10.0;

    /// <summary>
    /// Precision of what the reference runs under bf16 autocast (encoder, decoder, semantic head, teacher, LPIPS,
    /// discriminator backbone and heads): <see cref="ScalarType.BFloat16"/> as the reference trains, or
    /// <see cref="ScalarType.Float32"/> everywhere. Weights and optimizer state stay float32 either way.
    /// </summary>
    public ScalarType Precision { get; init; } = ScalarType.BFloat16;

    /// <summary>Throws with every reason at once when the options cannot train.</summary>
    public void Validate()
    {
        Schedule.Validate();
        var problems = new List<string>();
        foreach (var (name, value) in new[]
        {
            ("l1", L1Weight), ("l2", L2Weight), ("lp", LpipsWeight), ("lq", QuantWeight), ("ldistill", DistillWeight),
            ("ld", DiscriminatorWeight), ("llecam", LecamWeight), ("bcr", BcrWeight), ("lr", LearningRate), ("wd", WeightDecay),
            ("disc_lr", DiscriminatorLearningRate), ("disc_wd", DiscriminatorWeightDecay), ("grad_clip", GradientClip),
        })
            if (!(value >= 0) || double.IsInfinity(value)) problems.Add($"{name} must be a finite number >= 0, got {value}");
        if (OptimizerEps <= 0) problems.Add($"optim_eps must be positive, got {OptimizerEps}");
        foreach (var (name, (b1, b2)) in new[] { ("optim_beta", Betas), ("disc_optim_beta", DiscriminatorBetas) })
            if (b1 is < 0 or >= 1 || b2 is < 0 or >= 1) problems.Add($"{name} must be two numbers in [0, 1), got {b1}_{b2}");
        if (Precision is not (ScalarType.Float32 or ScalarType.BFloat16)) problems.Add($"precision must be float32 or bfloat16, got {Precision}");
        if (problems.Count > 0) throw new ArgumentException("Impossible training options: " + string.Join("; ", problems));
    }

    /// <summary>
    /// Options from the reference's <c>Args</c> (a checkpoint's <c>args</c> or a config's JSON), for a run of
    /// <paramref name="iterationsPerEpoch"/> iterations per epoch. Missing fields keep the reference defaults.
    /// <c>bf16</c> picks the precision.
    /// </summary>
    public static TrainingOptions FromReferenceArgs(IReadOnlyDictionary<string, object?> args, long iterationsPerEpoch)
    {
        ArgumentNullException.ThrowIfNull(args);
        var defaults = new TrainingOptions(new TrainingSchedule(iterationsPerEpoch));
        var s = defaults.Schedule;
        var schedule = new TrainingSchedule(
            iterationsPerEpoch,
            Epochs: (int)Real(args, "epoch", s.Epochs),
            WarmupEpochs: Real(args, "warmup_ep", s.WarmupEpochs),
            DiscriminatorStartEpochs: Real(args, "disc_start_ep", s.DiscriminatorStartEpochs),
            DiscriminatorWarmupEpochs: Real(args, "disc_warmup_ep", s.DiscriminatorWarmupEpochs),
            LrStartRatio: Real(args, "lr_start_ratio", s.LrStartRatio),
            LrEndRatio: Real(args, "lr_end_ratio", s.LrEndRatio),
            DiscriminatorLrEndRatio: Real(args, "disc_lr_end_ratio", s.DiscriminatorLrEndRatio),
            GradientAccumulation: (int)Real(args, "grad_accu", s.GradientAccumulation));
        var scheduleType = Text(args, "schedule") ?? "cos";
        if (scheduleType != "cos") throw new ArgumentException($"args.schedule '{scheduleType}' is not supported; the trainer implements the reference's 'cos'");
        var optimizer = Text(args, "optimizer") ?? "adamw";
        if (optimizer != "adamw") throw new ArgumentException($"args.optimizer '{optimizer}' is not supported; the trainer implements 'adamw'");
        var options = defaults with
        {
            Schedule = schedule,
            L1Weight = Real(args, "l1", defaults.L1Weight),
            L2Weight = Real(args, "l2", defaults.L2Weight),
            LpipsWeight = Real(args, "lp", defaults.LpipsWeight),
            LpipsMinResolution = (int)Real(args, "lpr", defaults.LpipsMinResolution),
            QuantWeight = Real(args, "lq", defaults.QuantWeight),
            EntropyWeight = Real(args, "le", defaults.EntropyWeight),
            DistillWeight = Real(args, "ldistill", defaults.DistillWeight),
            DiscriminatorWeight = Real(args, "ld", defaults.DiscriminatorWeight),
            AdaptiveWeight = (AdaptiveWeightBound)((int)Real(args, "gada", (int)defaults.AdaptiveWeight) % 10),
            Criterion = (Text(args, "dcrit") ?? "hg") switch
            {
                "hg" or "hinge" => DiscriminatorCriterion.Hinge,
                "sp" or "softplus" => DiscriminatorCriterion.Softplus,
                "ln" or "lin" or "linear" => DiscriminatorCriterion.Linear,
                var other => throw new ArgumentException($"args.dcrit '{other}' is not a discriminator criterion (hg, sp, ln)"),
            },
            LecamWeight = Real(args, "llecam", defaults.LecamWeight),
            BcrWeight = Real(args, "bcr", defaults.BcrWeight),
            BcrCutout = Real(args, "bcr_cut", defaults.BcrCutout),
            DiscriminatorAugmentProbability = Real(args, "disc_aug_prob", defaults.DiscriminatorAugmentProbability),
            LearningRate = Real(args, "lr", defaults.LearningRate),
            WeightDecay = Real(args, "wd", defaults.WeightDecay),
            DiscriminatorLearningRate = Real(args, "disc_lr", defaults.DiscriminatorLearningRate),
            DiscriminatorWeightDecay = Real(args, "disc_wd", defaults.DiscriminatorWeightDecay),
            Betas = Betas2(args, "optim_beta", defaults.Betas),
            DiscriminatorBetas = Betas2(args, "disc_optim_beta", defaults.DiscriminatorBetas),
            OptimizerEps = Real(args, "optim_eps", defaults.OptimizerEps),
            GradientClip = Real(args, "grad_clip", defaults.GradientClip),
            Precision = Flag(args, "bf16", true) ? ScalarType.BFloat16 : ScalarType.Float32,
        };
        if (args.TryGetValue("custom_lr_multiplier", out var multiplier) && multiplier is not null && !(multiplier is JsonElement { ValueKind: JsonValueKind.Null }))
            throw new ArgumentException("args.custom_lr_multiplier is set; the trainer implements the reference default (none)");
        options.Validate();
        return options;
    }

    private static double Real(IReadOnlyDictionary<string, object?> args, string name, double fallback) =>
        args.TryGetValue(name, out var v) && v is not null
            ? v switch
            {
                double d => d,
                float f => f,
                long l => l,
                int i => i,
                JsonElement { ValueKind: JsonValueKind.Number } j => j.GetDouble(),
                JsonElement { ValueKind: JsonValueKind.Null } => fallback,
                _ => throw new ArgumentException($"args.{name} should be a number, got '{v}'"),
            }
            : fallback;

    private static string? Text(IReadOnlyDictionary<string, object?> args, string name) =>
        args.TryGetValue(name, out var v) ? v switch
        {
            null => null,
            string s => s,
            JsonElement { ValueKind: JsonValueKind.String } j => j.GetString(),
            JsonElement { ValueKind: JsonValueKind.Null } => null,
            _ => v.ToString(),
        } : null;

    private static bool Flag(IReadOnlyDictionary<string, object?> args, string name, bool fallback) =>
        args.TryGetValue(name, out var v) ? v switch
        {
            bool b => b,
            JsonElement { ValueKind: JsonValueKind.True } => true,
            JsonElement { ValueKind: JsonValueKind.False } => false,
            null => fallback,
            _ => throw new ArgumentException($"args.{name} should be true or false, got '{v}'"),
        } : fallback;

    /// <summary>The reference's "b1_b2" beta strings, e.g. "0.9_0.95".</summary>
    private static (double, double) Betas2(IReadOnlyDictionary<string, object?> args, string name, (double, double) fallback)
    {
        var text = Text(args, name);
        if (text is null) return fallback;
        var parts = text.Split('_');
        if (parts.Length == 2
            && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var b1)
            && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var b2))
            return (b1, b2);
        throw new ArgumentException($"args.{name} should look like '0.9_0.95', got '{text}'");
    }
}
