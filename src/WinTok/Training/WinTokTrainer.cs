using TorchSharp;
using TorchSharp.Modules;
using WinTok.Checkpoints;
using WinTok.Model;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Training;

/// <summary>The perceptual term of the reconstruction loss (LPIPS-VGG in the reference).</summary>
public interface IPerceptualLoss
{
    /// <summary>Images and reconstructions (B, 3, H, W) in [-1, 1] to a scalar loss, differentiable in the reconstructions.</summary>
    Tensor Loss(Tensor images, Tensor reconstructions);
}

/// <summary>
/// The seam for data-parallel training: called with a model's trainable parameters after the backward of a stepping
/// iteration and before clipping, where DDP's all-reduce has averaged the gradients in the reference (it reduces on
/// every backward, which sums to the same). One process per GPU averages the <c>.grad</c> tensors here.
/// </summary>
/// <summary>
/// Told when each part of a training step has been issued (benchmarks: synchronize and read a clock, to see where the
/// time of a step goes). Parts: generator_forward, adversarial_weight, generator_backward, generator_step,
/// discriminator_forward, discriminator_backward, discriminator_step.
/// </summary>
public interface ITrainStepClock
{
    void Mark(string part);
}

public interface IGradientReducer
{
    void Reduce(IReadOnlyList<Parameter> parameters);
}

/// <summary>A loss term that is not a finite number: the reference stops training (exit code 666) at this point.</summary>
public sealed class NonFiniteLossException(long iteration, string terms)
    : Exception($"Iteration {iteration}: the training loss is not finite ({terms}); training cannot continue")
{
    public long Iteration { get; } = iteration;
}

/// <summary>
/// One WinTok training iteration as the reference runs it (examples/train_tokenizer/trainer.py <c>Trainer.train_step</c>
/// with train.py's schedules and utils/optimizer.py's <c>AmpOptimizer</c>; spec section 4): reconstruction, perceptual,
/// VQ, entropy and distillation losses; after the discriminator starts, a hinge GAN on a DINOv2 discriminator with an
/// adaptive weight, DiffAug, LeCAM and consistency regularisation; gradient accumulation, clipping and AdamW for both
/// models. Every random draw comes from the injected <see cref="ITrainingRandomness"/>.
/// </summary>
/// <remarks>
/// Build the networks on their device first (TorchSharp's <c>.to()</c> replaces parameters) and then the trainer,
/// which holds optimizers over those parameters. Tensor code is synchronous: call <see cref="TrainStep"/> on one
/// thread. Each step runs in its own dispose scope; only the models, the optimizer moments, the accumulated gradients
/// and the DiffAug kernel cache outlive it.
/// </remarks>
public sealed class WinTokTrainer : IDisposable
{
    private readonly WinTokModel generator;
    private readonly DinoDiscriminator discriminator;
    private readonly SiglipTeacher teacher;
    private readonly IPerceptualLoss? perceptual;
    private readonly ITrainingRandomness random;
    private readonly IGradientReducer? reducer;
    private readonly ITrainStepClock? clock;
    private readonly DiffAug discriminatorAugment;
    private readonly DiffAug consistencyAugment;
    private readonly LecamEma lecam = new();
    private readonly (string Name, Parameter Parameter)[] generatorParameters;
    private readonly (string Name, Parameter Parameter)[] discriminatorParameters;

    public WinTokTrainer(
        WinTokModel generator,
        DinoDiscriminator discriminator,
        SiglipTeacher teacher,
        IPerceptualLoss? perceptualLoss,
        TrainingOptions options,
        ITrainingRandomness randomness,
        IGradientReducer? gradientReducer = null,
        ITrainStepClock? clock = null)
    {
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(discriminator);
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(randomness);
        options.Validate();
        if (options.LpipsWeight > 0 && perceptualLoss is null)
            throw new ArgumentException("The options weight LPIPS (lp > 0) but no perceptual loss was given", nameof(perceptualLoss));
        if (teacher.Shape.HiddenSize != generator.Config.Encoder.HiddenSize)
            throw new ArgumentException($"The teacher's width {teacher.Shape.HiddenSize} differs from the encoder's {generator.Config.Encoder.HiddenSize}: the distillation compares their pooled outputs");
        (this.generator, this.discriminator, this.teacher, perceptual, random, reducer, this.clock) =
            (generator, discriminator, teacher, perceptualLoss, randomness, gradientReducer, clock);
        Options = options;
        discriminatorAugment = new DiffAug(options.DiscriminatorAugmentProbability, options.DiscriminatorCutout);
        consistencyAugment = new DiffAug(1, options.BcrCutout);
        generatorParameters = generator.named_parameters().ToArray();
        discriminatorParameters = discriminator.named_parameters().ToArray();
        GeneratorOptimizer = new AdamW(ParameterGroups.Partition(generatorParameters, options.LearningRate, options.WeightDecay),
            options.Betas.Beta1, options.Betas.Beta2, options.OptimizerEps);
        DiscriminatorOptimizer = new AdamW(ParameterGroups.Partition(discriminatorParameters, options.DiscriminatorLearningRate, options.DiscriminatorWeightDecay),
            options.DiscriminatorBetas.Beta1, options.DiscriminatorBetas.Beta2, options.OptimizerEps);
        generator.train();
    }

    public TrainingOptions Options { get; }

    public AdamW GeneratorOptimizer { get; }

    public AdamW DiscriminatorOptimizer { get; }

    /// <summary>The iteration after the last one run (0 before any).</summary>
    public long NextIteration { get; private set; }

    /// <summary>
    /// Runs global iteration <paramref name="iteration"/> on <paramref name="images"/> (B, 3, H, W) float32 in [-1, 1]
    /// on the models' device: sets both learning rates, accumulates gradients, and steps the optimizers when the
    /// accumulation window closes.
    /// </summary>
    /// <exception cref="NonFiniteLossException">A loss term is NaN or infinite (the reference stops there too).</exception>
    public TrainStepResult TrainStep(Tensor images, long iteration)
    {
        ArgumentNullException.ThrowIfNull(images);
        var plan = Options.Schedule.At(iteration);
        SetLearningRates(GeneratorOptimizer, plan.GeneratorLrMultiplier);
        if (plan.DiscriminatorLrMultiplier is { } discriminatorMultiplier) SetLearningRates(DiscriminatorOptimizer, discriminatorMultiplier);

        using var scope = NewDisposeScope();
        using var log = new ScalarLog();
        generator.train();
        images = images.to(ScalarType.Float32);

        Tensor recon, lnll, ldistill, lv;
        EncodeOutput encoded;
        using (Autocast.Enter(Options.Precision))
        {
            (encoded, recon) = generator.Forward(images);
            lnll = PixelLosses(images, recon, log);
            var target = teacher.PoolerOutput(generator.ScaleForSiglip(images)).to(ScalarType.Float32);
            var student = encoded.PoolerOut.to(ScalarType.Float32);
            var cosine = F.cosine_similarity(F.normalize(target, dim: -1), F.normalize(student, dim: -1), dim: -1);
            ldistill = log.Add("Ldistill", (1 - cosine).mean());
        }
        var (lq, le) = (log.Add("Lq", encoded.VqLoss), log.Add("Le", encoded.EntropyLoss));
        log.Add("CodebookUsage", encoded.Usage);
        clock?.Mark("generator_forward");

        if (plan.DiscriminatorActive)
        {
            SetTrainable(discriminator, false);
            discriminator.eval();
            using var adversarial = NewDisposeScope();
            Tensor lg;
            using (Autocast.Enter(Options.Precision))
                lg = log.Add("Lg", discriminator.Forward(discriminatorAugment.Augment(recon, plan.BlurFade, random), random).to(ScalarType.Float32).mean().neg());
            discriminator.train();
            var (weiG, reconGradient) = AdversarialWeight(plan, lnll, lg, recon, log);
            log.Add("LvTotal", lnll.detach() + lq.detach() * Options.QuantWeight + le.detach() * Options.EntropyWeight
                + weiG.detach() * lg.detach() + ldistill.detach() * Options.DistillWeight);
            // The adaptive weight already ran the pixel and adversarial losses backward to the reconstruction; the
            // generator's backward takes those gradients from there (their weighted sum, as lv's backward would reach
            // it) instead of running LPIPS and the discriminator backward a second time, and their graphs go now.
            lv = reconGradient is null
                ? lnll + lq * Options.QuantWeight + le * Options.EntropyWeight + weiG * lg + ldistill * Options.DistillWeight
                : recon.mul(reconGradient).sum() + lq * Options.QuantWeight + le * Options.EntropyWeight + ldistill * Options.DistillWeight;
            lv.MoveToOuterDisposeScope();
            lnll.Dispose();
            clock?.Mark("adversarial_weight");
        }
        else
        {
            lv = log.Add("LvTotal", lnll + lq * Options.QuantWeight + le * Options.EntropyWeight + ldistill * Options.DistillWeight);
        }
        var generatorNorm = BackwardClipStep(lv, GeneratorOptimizer, generatorParameters, plan.Stepping, "generator");

        // The discriminator learns from the reconstructions of this forward, detached (the reference's rec_img.data).
        var discriminatorNorm = plan.DiscriminatorActive ? DiscriminatorStep(images, recon.detach(), plan, log) : null;

        var values = log.Read();
        var nonFinite = values.Where(v => !double.IsFinite(v.Value)).Select(v => $"{v.Key} = {v.Value}").ToList();
        if (nonFinite.Count > 0) throw new NonFiniteLossException(iteration, string.Join(", ", nonFinite));
        NextIteration = iteration + 1;
        double? Value(string name) => values.TryGetValue(name, out var v) ? v : null;
        return new TrainStepResult
        {
            Iteration = iteration,
            Stepping = plan.Stepping,
            DiscriminatorActive = plan.DiscriminatorActive,
            GeneratorLearningRates = GeneratorOptimizer.Groups.Select(g => g.LearningRate).ToArray(),
            DiscriminatorLearningRates = plan.DiscriminatorLrMultiplier is null ? null : DiscriminatorOptimizer.Groups.Select(g => g.LearningRate).ToArray(),
            DiscriminatorWarmup = plan.DiscriminatorWarmup,
            BlurFade = plan.BlurFade,
            L1 = values["L1"],
            L2 = values["L2"],
            Lpips = Value("Lpips"),
            Lnll = values["Lnll"],
            Lq = values["Lq"],
            Le = values["Le"],
            Ldistill = values["Ldistill"],
            CodebookUsage = values["CodebookUsage"],
            Lg = Value("Lg"),
            AdaptiveGradNormNll = Value("AdaptiveGradNormNll"),
            AdaptiveGradNormG = Value("AdaptiveGradNormG"),
            WeiG = Value("WeiG"),
            LvTotal = values["LvTotal"],
            DHingeReal = Value("DHingeReal"),
            DHingeFake = Value("DHingeFake"),
            LecamReg = Value("LecamReg"),
            LecamEmaReal = plan.DiscriminatorActive && Options.LecamWeight > 0 ? lecam.Real : null,
            LecamEmaFake = plan.DiscriminatorActive && Options.LecamWeight > 0 ? lecam.Fake : null,
            LdHingePlusLecam = Value("LdHingePlusLecam"),
            BcrMseReal = Value("BcrMseReal"),
            BcrMseFake = Value("BcrMseFake"),
            Lbcr = Value("Lbcr"),
            LdTotal = Value("LdTotal"),
            AccReal = Value("AccReal"),
            AccFake = Value("AccFake"),
            GeneratorGradNorm = generatorNorm,
            DiscriminatorGradNorm = discriminatorNorm,
            PixelTokenIds = encoded.Indices.cpu().data<long>().ToArray(),
        };
    }

    /// <summary>Copies of everything needed to continue exactly from <see cref="NextIteration"/> (CPU tensors; dispose it).</summary>
    public TrainerState CaptureState()
    {
        using var noGrad = no_grad();
        static Dictionary<string, Tensor> Copy(IEnumerable<(string Name, Tensor Tensor)> tensors) =>
            tensors.ToDictionary(t => t.Name, t => t.Tensor.detach().cpu().clone().DetachFromDisposeScope());
        static IReadOnlyDictionary<string, AdamMoments> Moments(AdamW optimizer) => optimizer.CaptureState(CPU);
        static IEnumerable<(string, Tensor)> Gradients(IEnumerable<(string Name, Parameter Parameter)> parameters)
        {
            foreach (var (name, parameter) in parameters)
                if (parameter.grad is { } grad) yield return (name, grad);
        }
        using var scope = NewDisposeScope();
        return new TrainerState(
            NextIteration,
            Copy(generator.state_dict().Select(p => (p.Key, p.Value))),
            Copy(discriminator.state_dict().Select(p => (p.Key, p.Value))),
            Moments(GeneratorOptimizer),
            Moments(DiscriminatorOptimizer),
            Copy(Gradients(generatorParameters)),
            Copy(Gradients(discriminatorParameters)),
            lecam.Real,
            lecam.Fake,
            generator.UsageRecordCounts.ToArray(),
            discriminatorAugment.CachedBlurRadius,
            discriminatorAugment.CachedBlurKernel?.cpu().clone().DetachFromDisposeScope(),
            (random as IRestorableRandomness)?.CaptureState().DetachFromDisposeScope());
    }

    /// <summary>
    /// Puts back a state captured by <see cref="CaptureState"/> (of a trainer over the same architectures): weights
    /// and buffers are copied into the existing parameters, so the optimizers stay bound to them.
    /// </summary>
    /// <exception cref="CheckpointMismatchException">A state_dict does not fit a model; names every offending key.</exception>
    public void RestoreState(TrainerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        StateDictLoader.Load(generator, state.Generator, strict: true);
        StateDictLoader.Load(discriminator, state.Discriminator, strict: true);
        GeneratorOptimizer.RestoreState(state.GeneratorOptimizer);
        DiscriminatorOptimizer.RestoreState(state.DiscriminatorOptimizer);
        RestoreGradients(generatorParameters, state.GeneratorGradients);
        RestoreGradients(discriminatorParameters, state.DiscriminatorGradients);
        lecam.Restore(state.LecamEmaReal, state.LecamEmaFake);
        generator.UsageRecordCounts = state.UsageRecordCounts;
        discriminatorAugment.RestoreBlurCache(state.BlurKernelRadius, state.BlurKernel);
        if (state.RandomState is not null && random is IRestorableRandomness restorable) restorable.RestoreState(state.RandomState);
        NextIteration = state.NextIteration;
    }

    public void Dispose()
    {
        GeneratorOptimizer.Dispose();
        DiscriminatorOptimizer.Dispose();
        discriminatorAugment.Dispose();
        consistencyAugment.Dispose();
    }

    /// <summary>The reconstruction losses (L1, L2, LPIPS) and their weighted sum Lnll, which is returned.</summary>
    private Tensor PixelLosses(Tensor images, Tensor recon, ScalarLog log)
    {
        using var scope = NewDisposeScope();
        var l1 = log.Add("L1", F.l1_loss(recon, images));
        var l2 = log.Add("L2", F.mse_loss(recon, images));
        var lnll = l1 * Options.L1Weight + l2 * Options.L2Weight;
        if (images.shape[2] >= Options.LpipsMinResolution && Options.LpipsWeight > 0)
            lnll = lnll + log.Add("Lpips", perceptual!.Loss(images, recon).to(ScalarType.Float32)) * Options.LpipsWeight;
        return log.Add("Lnll", lnll).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The adaptive weight of the adversarial loss: <c>warmup * ld * bound(|dLnll/dW| / (|dLg/dW| + 1e-6))</c> with W
    /// the decoder's last convolution (reference <c>get_last_layer</c>); just <c>warmup * ld</c> when ld is 0. Also
    /// returns, when it computed them, <c>dLnll/drecon + weight * dLg/drecon</c>: the same backward passes reach the
    /// reconstruction on their way to W, and the generator's backward reuses their sum.
    /// </summary>
    private (Tensor Weight, Tensor? ReconGradient) AdversarialWeight(IterationPlan plan, Tensor lnll, Tensor lg, Tensor recon, ScalarLog log)
    {
        var weight = plan.DiscriminatorWarmup * Options.DiscriminatorWeight;
        if (!(Options.DiscriminatorWeight > 0)) return (log.Add("WeiG", tensor((float)weight, device: lg.device)), null);
        var lastLayer = generator.LastLayer;
        var nll = torch.autograd.grad([lnll], [lastLayer, recon], retain_graph: true);
        var adversarial = torch.autograd.grad([lg], [lastLayer, recon], retain_graph: true);
        var nllNorm = log.Add("AdaptiveGradNormNll", linalg.vector_norm(nll[0].detach(), 2));
        var gNorm = log.Add("AdaptiveGradNormG", linalg.vector_norm(adversarial[0].detach(), 2));
        var w = nllNorm / (gNorm + 1e-6);
        w = Options.AdaptiveWeight switch
        {
            AdaptiveWeightBound.Clamp0To1e4 => w.clamp(0.0, 1e4),
            AdaptiveWeightBound.Clamp0015To1e4 => w.clamp(0.015, 1e4),
            AdaptiveWeightBound.Clamp01To10 => w.clamp(0.1, 10),
            AdaptiveWeightBound.SqrtOfClamp0To1e4 => w.clamp(0.0, 1e4).sqrt(),
            AdaptiveWeightBound.Clamp0015To15 => w.clamp(0.015, 1.5),
            _ => throw new InvalidOperationException($"Unknown adaptive weight bound {Options.AdaptiveWeight}"),
        };
        var weiG = log.Add("WeiG", w.mul(weight));
        return (weiG, nll[1].detach() + weiG.detach() * adversarial[1].detach());
    }

    /// <summary>
    /// The discriminator's half of the iteration: hinge + LeCAM + BCR on real and detached fake images, then its
    /// backward, clip and step. Returns its gradient norm before clipping on stepping iterations.
    /// </summary>
    private float? DiscriminatorStep(Tensor images, Tensor recon, IterationPlan plan, ScalarLog log)
    {
        SetTrainable(discriminator, true);
        Tensor real, fake, ld;
        using (Autocast.Enter(Options.Precision))
        {
            // Drawn in the reference's order (augment and crop the real batch, then the fake one), scored together.
            var realInput = discriminator.Preprocess(discriminatorAugment.Augment(images, plan.BlurFade, random), random);
            var fakeInput = discriminator.Preprocess(discriminatorAugment.Augment(recon, plan.BlurFade, random), random);
            (real, fake) = discriminator.ScoreBoth(realInput, fakeInput);
            (real, fake) = (real.to(ScalarType.Float32), fake.to(ScalarType.Float32));
        }
        log.Add("AccReal", real.detach().gt(0).to(ScalarType.Float32).mean().mul(100));
        log.Add("AccFake", fake.detach().lt(0).to(ScalarType.Float32).mean().mul(100));
        var hingeReal = log.Add("DHingeReal", AdversarialLosses.Criterion(Options.Criterion, real));
        var hingeFake = log.Add("DHingeFake", AdversarialLosses.Criterion(Options.Criterion, fake.neg()));
        if (Options.LecamWeight > 0)
        {
            lecam.Update(real, fake);
            ld = hingeReal + hingeFake + log.Add("LecamReg", lecam.Regularizer(real, fake)) * Options.LecamWeight;
        }
        else
        {
            ld = hingeReal + hingeFake;
        }
        log.Add("LdHingePlusLecam", ld);
        if (Options.BcrWeight > 0)
        {
            Tensor strongReal, strongFake;
            using (Autocast.Enter(Options.Precision))
            {
                var realInput = discriminator.Preprocess(consistencyAugment.Augment(images, 0, random), random);
                var fakeInput = discriminator.Preprocess(consistencyAugment.Augment(recon, 0, random), random);
                (strongReal, strongFake) = discriminator.ScoreBoth(realInput, fakeInput);
                (strongReal, strongFake) = (strongReal.to(ScalarType.Float32), strongFake.to(ScalarType.Float32));
            }
            // The targets are not detached, as in the reference: BCR also pulls the plain logits.
            var lbcr = (log.Add("BcrMseReal", F.mse_loss(strongReal, real)) + log.Add("BcrMseFake", F.mse_loss(strongFake, fake))).mul(Options.BcrWeight);
            ld = ld + log.Add("Lbcr", lbcr);
        }
        log.Add("LdTotal", ld);
        clock?.Mark("discriminator_forward");
        return BackwardClipStep(ld, DiscriminatorOptimizer, discriminatorParameters, plan.Stepping, "discriminator");
    }

    /// <summary>
    /// The reference's <c>AmpOptimizer.backward_clip_step</c>: backward of loss / accumulation; on a stepping
    /// iteration reduce (data parallel), clip, step and clear the gradients. Returns the norm before clipping when it
    /// clipped.
    /// </summary>
    private float? BackwardClipStep(Tensor loss, AdamW optimizer, (string Name, Parameter Parameter)[] parameters, bool stepping, string model)
    {
        loss.mul(1.0 / Options.Schedule.GradientAccumulation).backward();
        clock?.Mark(model + "_backward");
        if (!stepping) return null;
        var trainable = parameters.Select(p => p.Parameter).Where(p => p.requires_grad).ToList();
        reducer?.Reduce(trainable);
        var norm = optimizer.ClipAndStep(Options.GradientClip);
        optimizer.ZeroGrad();
        clock?.Mark(model + "_step");
        return norm;
    }

    private static void SetLearningRates(AdamW optimizer, double multiplier)
    {
        foreach (var group in optimizer.Groups) group.LearningRate = multiplier * group.InitialLearningRate;
    }

    private static void SetTrainable(nn.Module module, bool trainable)
    {
        foreach (var parameter in module.parameters()) parameter.requires_grad = trainable;
    }

    private static void RestoreGradients((string Name, Parameter Parameter)[] parameters, IReadOnlyDictionary<string, Tensor> gradients)
    {
        var names = parameters.Select(p => p.Name).ToHashSet();
        var unknown = gradients.Keys.Where(name => !names.Contains(name)).ToList();
        if (unknown.Count > 0) throw new ArgumentException("Gradients for unknown parameters: " + string.Join(", ", unknown));
        using var noGrad = no_grad();
        foreach (var (name, parameter) in parameters)
        {
            using (var old = parameter.grad)
                if (old is not null) parameter.grad = null;
            if (!gradients.TryGetValue(name, out var gradient)) continue;
            if (!gradient.shape.SequenceEqual(parameter.shape))
                throw new ArgumentException($"Gradient for {name}: ({string.Join(", ", gradient.shape)}), parameter ({string.Join(", ", parameter.shape)})");
            using var copy = gradient.to(parameter.dtype, parameter.device).clone();
            parameter.grad = copy;
        }
    }

    /// <summary>Named scalar tensors of a step, read back to the host in one transfer at the end; owns what it records.</summary>
    private sealed class ScalarLog : IDisposable
    {
        private readonly List<(string Name, Tensor Value)> entries = [];

        /// <summary>Records a detached view of <paramref name="value"/> (the log never keeps a graph alive) and returns the value.</summary>
        public Tensor Add(string name, Tensor value)
        {
            entries.Add((name, value.detach().DetachFromDisposeScope()));
            return value;
        }

        public void Dispose()
        {
            foreach (var (_, value) in entries) value.Dispose();
            entries.Clear();
        }

        public Dictionary<string, double> Read()
        {
            using var scope = NewDisposeScope();
            var values = stack(entries.Select(e => e.Value.detach().to(ScalarType.Float32).reshape(1)).ToArray()).cpu().data<float>().ToArray();
            return entries.Select((e, i) => (e.Name, Value: (double)values[i])).ToDictionary(e => e.Name, e => e.Value);
        }
    }
}
