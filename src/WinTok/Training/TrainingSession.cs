using System.Globalization;
using TorchSharp;
using WinTok.Checkpoints;
using WinTok.Evaluation;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>The local files a run's networks are built from (blob locations already fetched by the caller).</summary>
/// <param name="TeacherConfig">The HF SigLIP2 folder's <c>config.json</c>: the teacher's and the encoder's shape.</param>
/// <param name="TeacherWeights">Its <c>model.safetensors</c>: the teacher, and the encoder's starting weights.</param>
/// <param name="Lpips">The training LPIPS weights (<c>lpips_with_vgg.pth</c>); null when <c>lp</c> is 0.</param>
/// <param name="Dino">The discriminator's DINOv2 weights (<c>dinov2_vits14_pretrain.pth</c>).</param>
/// <param name="Init">A WinTok checkpoint to start from (.pth or safetensors; its <c>trainer.disc</c> too when present), or null to start as the reference does from the teacher folder's weights.</param>
public sealed record TrainingFiles(string TeacherConfig, string TeacherWeights, string? Lpips, string Dino, string? Init)
{
    /// <summary>The files of an HF folder holding <c>config.json</c> and <c>model.safetensors</c>.</summary>
    public static TrainingFiles FromTeacherFolder(string teacherFolder, string? lpips, string dino, string? init) =>
        new(Path.Combine(teacherFolder, "config.json"), Path.Combine(teacherFolder, "model.safetensors"), lpips, dino, init);
}

/// <summary>Everything a <see cref="TrainingSession"/> is built from, as plain values.</summary>
/// <param name="ArgsJson">The run's arguments in the reference's <c>Args</c> names (JSON object): they shape the networks, set the losses and schedules, and are written into every checkpoint.</param>
/// <param name="IterationsPerEpoch">The reference's <c>num_batches</c>.</param>
/// <param name="Seed">Seeds the initialisation and the trainer's random draws.</param>
/// <param name="DinoHeads">The DINOv2 backbone's head count when it is not DINOv2's 64-wide heads.</param>
public sealed record TrainingSetup(string ArgsJson, long IterationsPerEpoch, TrainingFiles Files, ulong Seed, int? DinoHeads = null);

/// <summary>Where a checkpoint leaves the run: the iteration to run next and the data position to read from next.</summary>
public sealed record TrainingResumePoint(long NextIteration, string? DataPosition);

/// <summary>What a checkpoint records besides the networks: where in the run and the data it was taken.</summary>
/// <param name="NextIteration">The global iteration the run continues with.</param>
/// <param name="DataPosition">The data reader's position after the last batch trained on (opaque JSON).</param>
public sealed record TrainingSavePoint(long NextIteration, string? DataPosition);

/// <summary>
/// One training run on the model thread: its networks, trainer and random source, built from files
/// (<see cref="Create"/>), stepped with plain float batches (<see cref="Step"/>), saved as checkpoints in the official
/// layout with everything an exact resume needs (<see cref="Save"/>), and resumed from one (<see cref="Resume"/>).
/// Synchronous tensor code: call it on one thread (<see cref="TrainingOnThread"/> does, through the
/// <see cref="Inference.ModelThread"/>).
/// </summary>
/// <remarks>
/// A checkpoint is <c>{'args', 'epoch', 'iter', 'trainer': {'config', 'unitok', 'disc', 'unitok_optim', 'disc_optim'}}</c>
/// as the reference's train.py saves it, so its loaders read ours, plus a top-level <c>'wintok'</c> entry the reference
/// ignores: the next iteration, the data position, the LeCAM EMAs, the usage record counts, DiffAug's blur cache, the
/// random source's state and any gradients accumulated since the last optimizer step.
/// </remarks>
public sealed class TrainingSession : IDisposable
{
    /// <summary>The top-level key of our resume state in a checkpoint.</summary>
    public const string ResumeKey = "wintok";

    private const long ResumeVersion = 1;
    private readonly WinTokModel generator;
    private readonly DinoDiscriminator discriminator;
    private readonly SiglipTeacher teacher;
    private readonly Lpips? lpips;
    private readonly TorchRandomness random;
    private readonly WinTokTrainer trainer;
    private readonly Device device;
    private readonly IReadOnlyDictionary<string, object?> args;
    private readonly bool tf32;

    private TrainingSession(WinTokModel generator, DinoDiscriminator discriminator, SiglipTeacher teacher, Lpips? lpips,
        TorchRandomness random, WinTokTrainer trainer, Device device, IReadOnlyDictionary<string, object?> args)
    {
        (this.generator, this.discriminator, this.teacher, this.lpips, this.random, this.trainer, this.device, this.args) =
            (generator, discriminator, teacher, lpips, random, trainer, device, args);
        tf32 = device.type == DeviceType.CUDA && (!args.TryGetValue("tf32", out var flag) || flag is not false);
    }

    public TrainingOptions Options => trainer.Options;

    /// <summary>The model's image side: batches are (B, 3, size, size).</summary>
    public int ImageSize => generator.Config.Encoder.ImageSize;

    public long NextIteration => trainer.NextIteration;

    /// <summary>Trainable parameters of the generator and of the discriminator's heads.</summary>
    public (long Generator, long Discriminator) ParameterCounts =>
        (generator.parameters().Where(p => p.requires_grad).Sum(p => p.numel()), discriminator.parameters().Sum(p => p.numel()));

    /// <summary>
    /// Builds the networks on the CPU from <paramref name="setup"/>'s files (strict loads: a missing or misshaped tensor
    /// fails naming it), moves them to <paramref name="device"/>, and makes the trainer and its optimizers over them.
    /// </summary>
    public static TrainingSession Create(TrainingSetup setup, Device device)
    {
        ArgumentNullException.ThrowIfNull(setup);
        ArgumentNullException.ThrowIfNull(device);
        var args = ArgsJson.Deserialize(setup.ArgsJson);
        var options = TrainingOptions.FromReferenceArgs(args, setup.IterationsPerEpoch);
        var files = setup.Files;
        var (teacherConfig, teacherWeights) = (files.TeacherConfig, files.TeacherWeights);
        foreach (var file in new[] { teacherConfig, teacherWeights, files.Dino }.Concat(files.Lpips is null ? [] : [files.Lpips]).Concat(files.Init is null ? [] : [files.Init]))
            if (!File.Exists(file)) throw new FileNotFoundException($"The training run needs {file}, which does not exist", file);
        if (options.LpipsWeight > 0 && files.Lpips is null) throw new ArgumentException("The run weights LPIPS (lp > 0) but names no LPIPS weights file");

        EncoderShape shape;
        try
        {
            shape = ReferenceArgs.EncoderFromHfConfigJson(File.ReadAllText(teacherConfig));
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{teacherConfig}: {e.Message}", e);
        }
        manual_seed((long)(setup.Seed & long.MaxValue));

        var disposables = new List<IDisposable>();
        try
        {
            var teacher = Track(disposables, SiglipTeacher.Load(teacherWeights, shape));
            var generator = Track(disposables, files.Init is { } init ? LoadGenerator(init, args, shape) : NewGenerator(args, shape, teacherWeights));
            var discriminator = Track(disposables, BuildDiscriminator(files, args, setup.DinoHeads));
            var lpips = files.Lpips is { } lpipsFile && options.LpipsWeight > 0 ? Track(disposables, Lpips.LoadTraining(lpipsFile)) : null;

            // Networks move before the optimizers exist: TorchSharp's .to() replaces parameters.
            generator.to(device);
            discriminator.MoveTo(device);
            teacher.to(device);
            lpips?.to(device);
            var random = Track(disposables, new TorchRandomness(setup.Seed));
            var trainer = new WinTokTrainer(generator, discriminator, teacher, lpips is null ? null : new LpipsLoss(lpips), options, random);
            return new TrainingSession(generator, discriminator, teacher, lpips, random, trainer, device, args);
        }
        catch
        {
            foreach (var item in disposables) item.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs global iteration <paramref name="iteration"/> (it must be <see cref="NextIteration"/>) on <paramref name="count"/>
    /// images of <paramref name="values"/> (count x 3 x size x size float32 in [-1, 1]).
    /// </summary>
    /// <exception cref="NonFiniteLossException">A loss is not finite; the run cannot continue (the reference exits).</exception>
    public TrainStepResult Step(float[] values, int count, long iteration)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (iteration != trainer.NextIteration)
            throw new ArgumentException($"The session is at iteration {trainer.NextIteration}, not {iteration}", nameof(iteration));
        var size = ImageSize;
        if (values.Length != count * 3L * size * size)
            throw new ArgumentException($"{values.Length} values are not {count} images of 3 x {size} x {size}", nameof(values));
        using var scope = NewDisposeScope();
        var images = tensor(values).reshape(count, 3, size, size).to(device);
        if (!tf32) return trainer.TrainStep(images, iteration);
        // The reference trains with TF32 matmuls and convolutions (args.tf32). The switches are process-wide; other work
        // on this thread (a float32 evaluation) must not inherit them, so they hold for the step only.
        var (matmul, cudnn) = (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32);
        backends.cuda.matmul.allow_tf32 = backends.cudnn.allow_tf32 = true;
        try
        {
            return trainer.TrainStep(images, iteration);
        }
        finally
        {
            (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32) = (matmul, cudnn);
        }
    }

    /// <summary>
    /// Writes a checkpoint in the reference layout to <paramref name="path"/> (beside it, then renamed over it) and, when
    /// <paramref name="weightsPath"/> is given, the model's weights with its args as safetensors there too. The reference's
    /// <c>epoch</c> and <c>iter</c> name the iteration just finished, as its train.py records them.
    /// </summary>
    public void Save(string path, TrainingSavePoint point, string? weightsPath = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(point);
        using var scope = NewDisposeScope();
        using var state = trainer.CaptureState();
        if (state.NextIteration != point.NextIteration)
            throw new ArgumentException($"The trainer is at iteration {state.NextIteration}, the save point says {point.NextIteration}", nameof(point));
        var finished = point.NextIteration - 1;
        var perEpoch = trainer.Options.Schedule.IterationsPerEpoch;
        var atEnd = point.NextIteration >= trainer.Options.Schedule.MaxIterations;
        var checkpoint = new TrainingCheckpoint(CheckpointArgs(), state.Generator)
        {
            // The reference's last checkpoint says epoch = args.epoch, iter = 0; the others the iteration just finished.
            Epoch = atEnd ? trainer.Options.Schedule.Epochs : Math.Max(0, finished) / perEpoch,
            Iteration = atEnd ? 0 : Math.Max(0, finished) % perEpoch,
            TrainerConfig = TrainerConfig(),
            Discriminator = state.Discriminator,
            ModelOptimizer = OptimizerState(trainer.GeneratorOptimizer, state.GeneratorOptimizer),
            DiscriminatorOptimizer = OptimizerState(trainer.DiscriminatorOptimizer, state.DiscriminatorOptimizer),
            Extra = new Dictionary<string, object?> { [ResumeKey] = ResumeState(state, point) },
        };
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null) Directory.CreateDirectory(directory);
        CheckpointFile.WritePyTorch(path, checkpoint);
        if (weightsPath is not null)
        {
            // JSON has no dtype object: the safetensors args name it as Python prints it.
            var weightsArgs = new Dictionary<string, object?>(CheckpointArgs())
            {
                ["dtype"] = trainer.Options.Precision == ScalarType.BFloat16 ? "torch.bfloat16" : "torch.float32",
            };
            CheckpointFile.Write(weightsPath, weightsArgs, state.Generator);
        }
    }

    /// <summary>
    /// Puts the run back where <paramref name="path"/>, a checkpoint <see cref="Save"/> wrote, left it: weights, both
    /// optimizers, the LeCAM EMAs, the usage counts, the blur cache, the random source and accumulated gradients.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file is not one of our training checkpoints (no resume state).</exception>
    /// <exception cref="CheckpointMismatchException">Its networks do not fit this run's; names every offending tensor.</exception>
    public TrainingResumePoint Resume(string path)
    {
        using var checkpoint = CheckpointFile.ReadTraining(path);
        if (!checkpoint.Extra.TryGetValue(ResumeKey, out var value) || value is not IReadOnlyDictionary<string, object?> resume)
            throw new CheckpointFormatException(path, $"it has no ckpt['{ResumeKey}'] resume state; only checkpoints this trainer wrote can be resumed exactly (start from another with 'init')");
        if (checkpoint.Discriminator is null || checkpoint.ModelOptimizer is null || checkpoint.DiscriminatorOptimizer is null)
            throw new CheckpointFormatException(path, "it lacks the discriminator or an optimizer state, which resuming needs");
        var next = Long(path, resume, "next_iteration");
        var state = new TrainerState(
            next,
            checkpoint.Model,
            checkpoint.Discriminator,
            Moments(path, "unitok_optim", trainer.GeneratorOptimizer, checkpoint.ModelOptimizer),
            Moments(path, "disc_optim", trainer.DiscriminatorOptimizer, checkpoint.DiscriminatorOptimizer),
            Tensors(resume, "generator_gradients"),
            Tensors(resume, "discriminator_gradients"),
            Real(path, resume, "lecam_ema_real"),
            Real(path, resume, "lecam_ema_fake"),
            resume.TryGetValue("usage_record_counts", out var counts) && counts is IEnumerable<object?> list
                ? list.Select(c => checked((int)Convert.ToInt64(c, CultureInfo.InvariantCulture))).ToArray()
                : throw new CheckpointFormatException(path, $"ckpt['{ResumeKey}']['usage_record_counts'] is missing"),
            (int)Long(path, resume, "blur_kernel_radius"),
            resume.GetValueOrDefault("blur_kernel") as Tensor,
            resume.GetValueOrDefault("random_state") as Tensor);
        trainer.RestoreState(state);
        foreach (var moments in state.GeneratorOptimizer.Values.Concat(state.DiscriminatorOptimizer.Values))
        {
            moments.ExpAvg.Dispose();
            moments.ExpAvgSq.Dispose();
        }
        return new TrainingResumePoint(next, resume.GetValueOrDefault("data_position") as string);
    }

    public void Dispose()
    {
        trainer.Dispose();
        random.Dispose();
        lpips?.Dispose();
        teacher.Dispose();
        discriminator.Dispose();
        generator.Dispose();
    }

    private static T Track<T>(List<IDisposable> disposables, T item) where T : IDisposable
    {
        disposables.Add(item);
        return item;
    }

    /// <summary>A checkpoint to start from: its weights, with the teacher folder's encoder shape when its args do not give one.</summary>
    private static WinTokModel LoadGenerator(string path, IReadOnlyDictionary<string, object?> args, EncoderShape shape)
    {
        using var checkpoint = CheckpointFile.Read(path);
        var own = checkpoint.Args.Count > 0 ? checkpoint.Args : args;
        var fromFile = ReferenceArgs.ToConfig(own, own.ContainsKey(ReferenceArgs.EncoderConfigKey) ? null : shape);
        var wanted = ReferenceArgs.ToConfig(args, shape);
        // The architecture must agree; the loss settings the config also holds (vq_beta, le, e_temp) are the run's.
        if (fromFile with { VqBeta = wanted.VqBeta, EntropyWeight = wanted.EntropyWeight, EntropyTemperature = wanted.EntropyTemperature } != wanted)
            throw new ArgumentException($"The init checkpoint {path} is a different network from the one the run's arguments describe: " +
                $"checkpoint {Describe(fromFile)}; run {Describe(wanted)}");
        var model = new WinTokModel(wanted);
        try
        {
            checkpoint.LoadInto(model, strict: true);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    private static string Describe(WinTokConfig config) => string.Create(CultureInfo.InvariantCulture,
        $"(encoder {config.Encoder.HiddenSize}x{config.Encoder.Layers}, image {config.Encoder.ImageSize}, latent tokens {config.NumLatentTokens}, " +
        $"vocab {config.VocabSize}/{config.VocabWidth}/{config.NumCodebooks}, decoder {config.DecoderHidden}x{config.DecoderDepth})");

    private static WinTokModel NewGenerator(IReadOnlyDictionary<string, object?> args, EncoderShape shape, string siglipWeights)
    {
        var model = new WinTokModel(ReferenceArgs.ToConfig(args, shape));
        try
        {
            using var siglip = CheckpointFile.Read(siglipWeights);
            ReferenceInitialization.Apply(model, siglip.StateDict, ReferenceArgs.Real(args, "vocab_init", -1));
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>The reference's <c>build_discriminator</c>: DINOv2 backbone from its file, heads initialised or from the init checkpoint.</summary>
    private static DinoDiscriminator BuildDiscriminator(TrainingFiles files, IReadOnlyDictionary<string, object?> args, int? heads)
    {
        DinoVisionTransformer backbone;
        using (var weights = CheckpointFile.Read(files.Dino))
            backbone = DinoVisionTransformer.FromStateDict(weights.StateDict, DinoConfig.Infer(weights.StateDict, heads));
        var gain = ReferenceArgs.Real(args, "disc_init", -0.5);
        if (gain >= 0) throw new ArgumentException($"disc_init {gain} asks for trunc-normal head weights; the trainer implements the reference's xavier-normal (disc_init < 0)");
        var discriminator = new DinoDiscriminator(backbone,
            DiscriminatorConfig.Reference with { KernelSize = ReferenceArgs.Int(args, "dino_kernel_size", 9), InitGain = -gain });
        try
        {
            if (files.Init is { } init && CheckpointFile.HasStateDict(init, "trainer", "disc"))
            {
                using var trained = CheckpointFile.Read(init, "trainer", "disc");
                trained.LoadInto(discriminator, strict: true);
            }
        }
        catch
        {
            discriminator.Dispose();
            throw;
        }
        return discriminator;
    }

    /// <summary>The run's args as a checkpoint carries them: the reference's names, the dtype object, our encoder shape.</summary>
    private IReadOnlyDictionary<string, object?> CheckpointArgs()
    {
        var result = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in args) result[key] = value;
        result["dtype"] = trainer.Options.Precision;
        result[ReferenceArgs.EncoderConfigKey] = ReferenceArgs.FromConfig(generator.Config)[ReferenceArgs.EncoderConfigKey];
        return result;
    }

    /// <summary>The reference trainer's <c>get_config()</c>; its strict load compares it with its own.</summary>
    private Dictionary<string, object?> TrainerConfig() => new()
    {
        ["dcrit"] = ReferenceArgs.Text(args, "dcrit") ?? "hg",
        ["wei_l1"] = trainer.Options.L1Weight,
        ["wei_l2"] = trainer.Options.L2Weight,
        ["wei_lpips"] = trainer.Options.LpipsWeight,
        ["wei_disc"] = trainer.Options.DiscriminatorWeight,
        ["wei_clip"] = ReferenceArgs.Real(args, "lc", 0.0),
        ["wei_distill"] = trainer.Options.DistillWeight,
        ["bcr"] = trainer.Options.BcrWeight,
    };

    /// <summary>
    /// An optimizer's moments as <c>torch.optim.AdamW.state_dict()</c>: parameters numbered through the groups in order
    /// (decayed, then not), which is how the reference's <c>partition_param_groups</c> lists them.
    /// </summary>
    private static AdamWState OptimizerState(AdamW optimizer, IReadOnlyDictionary<string, AdamMoments> moments)
    {
        var index = 0;
        var groups = new List<AdamWParamGroup>();
        var state = new Dictionary<int, AdamWParamState>();
        foreach (var group in optimizer.Groups)
        {
            var indices = new List<int>();
            foreach (var (name, _) in group.Parameters)
            {
                if (moments.TryGetValue(name, out var m))
                    state[index] = new AdamWParamState(tensor((float)m.Step), m.ExpAvg, m.ExpAvgSq);
                indices.Add(index++);
            }
            groups.Add(new AdamWParamGroup(indices)
            {
                Lr = group.LearningRate,
                Beta1 = optimizer.Beta1,
                Beta2 = optimizer.Beta2,
                Eps = optimizer.Eps,
                WeightDecay = group.WeightDecay,
                Fused = false,
                Extra = new Dictionary<string, object?> { ["init_lr"] = group.InitialLearningRate },
            });
        }
        return new AdamWState(state, groups);
    }

    /// <summary>An optimizer state read back, by parameter name, checked against this run's groups.</summary>
    private static Dictionary<string, AdamMoments> Moments(string path, string key, AdamW optimizer, AdamWState saved)
    {
        var names = optimizer.Groups.SelectMany(g => g.Parameters.Select(p => p.Name)).ToList();
        var savedGroups = saved.ParamGroups.Select(g => g.Params.Count).ToList();
        var ownGroups = optimizer.Groups.Select(g => g.Parameters.Count).ToList();
        if (!savedGroups.SequenceEqual(ownGroups))
            throw new CheckpointFormatException(path, $"ckpt['trainer']['{key}'] has param groups of [{string.Join(", ", savedGroups)}] parameters; this run's optimizer has [{string.Join(", ", ownGroups)}]");
        var result = new Dictionary<string, AdamMoments>();
        foreach (var (index, moments) in saved.State)
        {
            if (index < 0 || index >= names.Count)
                throw new CheckpointFormatException(path, $"ckpt['trainer']['{key}'] has state for parameter {index}, beyond this run's {names.Count}");
            result[names[index]] = new AdamMoments(moments.Step.item<float>(), moments.ExpAvg.clone(), moments.ExpAvgSq.clone());
        }
        return result;
    }

    private Dictionary<string, object?> ResumeState(TrainerState state, TrainingSavePoint point)
    {
        var resume = new Dictionary<string, object?>
        {
            ["version"] = ResumeVersion,
            ["next_iteration"] = point.NextIteration,
            ["data_position"] = point.DataPosition,
            ["lecam_ema_real"] = state.LecamEmaReal,
            ["lecam_ema_fake"] = state.LecamEmaFake,
            ["usage_record_counts"] = state.UsageRecordCounts.Select(c => (long)c).ToList(),
            ["blur_kernel_radius"] = (long)state.BlurKernelRadius,
            ["generator_gradients"] = state.GeneratorGradients,
            ["discriminator_gradients"] = state.DiscriminatorGradients,
        };
        if (state.BlurKernel is not null) resume["blur_kernel"] = state.BlurKernel;
        if (state.RandomState is not null) resume["random_state"] = state.RandomState;
        return resume;
    }

    private static long Long(string path, IReadOnlyDictionary<string, object?> resume, string key) =>
        resume.TryGetValue(key, out var value) && value is long number ? number
            : throw new CheckpointFormatException(path, $"ckpt['{ResumeKey}']['{key}'] is missing or not an int");

    private static double Real(string path, IReadOnlyDictionary<string, object?> resume, string key) =>
        resume.TryGetValue(key, out var value) && value is double or long ? Convert.ToDouble(value, CultureInfo.InvariantCulture)
            : throw new CheckpointFormatException(path, $"ckpt['{ResumeKey}']['{key}'] is missing or not a number");

    private static IReadOnlyDictionary<string, Tensor> Tensors(IReadOnlyDictionary<string, object?> resume, string key) =>
        resume.GetValueOrDefault(key) as IReadOnlyDictionary<string, Tensor> ?? new Dictionary<string, Tensor>();
}
