namespace WinTok.Training;

/// <summary>
/// The reference's schedules as pure functions of the global iteration (examples/train_tokenizer/train.py,
/// utils/scheduler.py), evaluated in float64 in the reference's operation order so the learning rates are the same
/// numbers. Lengths are in iterations, not optimizer steps: with gradient accumulation the reference still sets the
/// rates every iteration.
/// </summary>
/// <param name="IterationsPerEpoch">The reference's <c>num_batches</c> (iterations per epoch).</param>
/// <param name="Epochs">Epochs of the run (<c>args.epoch</c>).</param>
/// <param name="WarmupEpochs">Generator LR warm-up (<c>warmup_ep</c>), in epochs.</param>
/// <param name="DiscriminatorStartEpochs">When the discriminator starts (<c>disc_start_ep</c>), in epochs.</param>
/// <param name="DiscriminatorWarmupEpochs">Discriminator LR and loss warm-up (<c>disc_warmup_ep</c>), in epochs; the blur fades over twice as long.</param>
/// <param name="LrStartRatio">Warm-up starts at this fraction of the base rate (<c>lr_start_ratio</c>).</param>
/// <param name="LrEndRatio">The generator's cosine ends at this fraction (<c>lr_end_ratio</c>).</param>
/// <param name="DiscriminatorLrEndRatio">The discriminator's cosine end fraction (<c>disc_lr_end_ratio</c>).</param>
/// <param name="GradientAccumulation">Iterations per optimizer step (<c>grad_accu</c>).</param>
public sealed record TrainingSchedule(
    long IterationsPerEpoch,
    int Epochs = 5,
    double WarmupEpochs = 0.02,
    double DiscriminatorStartEpochs = 0.2,
    double DiscriminatorWarmupEpochs = 0.02,
    double LrStartRatio = 0.0,
    double LrEndRatio = 0.1,
    double DiscriminatorLrEndRatio = 0.1,
    int GradientAccumulation = 4)
{
    public long MaxIterations => Epochs * IterationsPerEpoch;

    public double WarmupIterations => WarmupEpochs * IterationsPerEpoch;

    public double DiscriminatorStartIteration => DiscriminatorStartEpochs * IterationsPerEpoch;

    public double DiscriminatorWarmupIterations => DiscriminatorWarmupEpochs * IterationsPerEpoch;

    public double DiscriminatorMaxIterations => MaxIterations - DiscriminatorStartEpochs * IterationsPerEpoch;

    /// <summary>Throws with every reason at once when the schedule cannot run.</summary>
    public void Validate()
    {
        var problems = new List<string>();
        if (IterationsPerEpoch < 1) problems.Add($"iterations per epoch must be at least 1, got {IterationsPerEpoch}");
        if (Epochs < 1) problems.Add($"epochs must be at least 1, got {Epochs}");
        if (GradientAccumulation < 1) problems.Add($"gradient accumulation must be at least 1, got {GradientAccumulation}");
        if (WarmupEpochs <= 0 || DiscriminatorWarmupEpochs <= 0)
            problems.Add($"warm-up lengths must be positive (the reference divides by them), got {WarmupEpochs} and {DiscriminatorWarmupEpochs}");
        if (DiscriminatorStartEpochs < 0) problems.Add($"the discriminator start must not be negative, got {DiscriminatorStartEpochs}");
        if (problems.Count > 0) throw new ArgumentException("Impossible training schedule: " + string.Join("; ", problems));
    }

    /// <summary>Everything the step at <paramref name="iteration"/> needs from the schedule.</summary>
    public IterationPlan At(long iteration)
    {
        var discriminatorIteration = iteration - DiscriminatorStartIteration;
        var discriminatorOn = discriminatorIteration >= 0;
        return new IterationPlan(
            iteration,
            GeneratorLrMultiplier: CosineWithWarmup(iteration, WarmupIterations, MaxIterations, LrStartRatio, LrEndRatio),
            DiscriminatorLrMultiplier: discriminatorOn
                ? CosineWithWarmup(discriminatorIteration, DiscriminatorWarmupIterations, DiscriminatorMaxIterations, LrStartRatio, DiscriminatorLrEndRatio)
                : null,
            Stepping: (iteration + 1) % GradientAccumulation == 0,
            DiscriminatorWarmup: DiscriminatorWarmup(discriminatorIteration, DiscriminatorWarmupIterations),
            BlurFade: BlurFade(discriminatorIteration, DiscriminatorWarmupIterations));
    }

    /// <summary>
    /// utils/scheduler.py <c>LRScheduler.step</c> of type 'cos': linear from <paramref name="startRatio"/> over the
    /// warm-up, then <c>e + (1 - e)(0.5 + 0.5 cos(pi p))</c> with <c>p = (it - wp) / (max - wp - 1)</c>.
    /// </summary>
    public static double CosineWithWarmup(double iteration, double warmupIterations, double maxIterations, double startRatio, double endRatio)
    {
        if (iteration < warmupIterations)
            return startRatio + (1 - startRatio) * iteration / warmupIterations;
        var past = (iteration - warmupIterations) / (maxIterations - warmupIterations - 1);
        return endRatio + (1 - endRatio) * (0.5 + 0.5 * Math.Cos(Math.PI * past));
    }

    /// <summary>
    /// train.py's <c>warmup_disc_schedule</c>, then the trainer's rule that values below 1e-6 become 0: 0 before the
    /// discriminator starts, rising linearly to 1 over the warm-up. The discriminator and the adversarial loss run
    /// only while it is positive.
    /// </summary>
    public static double DiscriminatorWarmup(double discriminatorIteration, double warmupIterations)
    {
        var value = discriminatorIteration < 0 ? 0 : Math.Min(1.0, discriminatorIteration / warmupIterations);
        return value < 1e-6 ? 0 : value;
    }

    /// <summary>
    /// train.py's <c>fade_blur_schedule</c>, then the trainer's 1e-6 rule: 1 before the start (unused then), falling
    /// linearly to 0 over twice the warm-up. It scales DiffAug's warm-up blur.
    /// </summary>
    public static double BlurFade(double discriminatorIteration, double warmupIterations)
    {
        var value = 1 - (discriminatorIteration < 0 ? 0 : Math.Min(1.0, discriminatorIteration / (warmupIterations * 2)));
        return value < 1e-6 ? 0 : value;
    }
}

/// <summary>What the schedule says for one iteration.</summary>
/// <param name="Iteration">The global iteration (0-based).</param>
/// <param name="GeneratorLrMultiplier">Times each generator group's initial rate.</param>
/// <param name="DiscriminatorLrMultiplier">Times each discriminator group's initial rate; null before the discriminator starts (its rates are then left as they were).</param>
/// <param name="Stepping">Whether the optimizers step (and gradients are cleared) after this iteration.</param>
/// <param name="DiscriminatorWarmup">Weight of the adversarial loss, in [0, 1]; 0 turns the discriminator off.</param>
/// <param name="BlurFade">DiffAug's warm-up blur schedule, in [0, 1].</param>
public sealed record IterationPlan(
    long Iteration,
    double GeneratorLrMultiplier,
    double? DiscriminatorLrMultiplier,
    bool Stepping,
    double DiscriminatorWarmup,
    double BlurFade)
{
    public bool DiscriminatorActive => DiscriminatorWarmup > 0;
}
