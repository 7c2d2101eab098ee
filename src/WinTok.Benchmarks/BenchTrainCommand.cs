using System.CommandLine;
using System.Diagnostics;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using WinTok.Cuda;
using WinTok.Evaluation;
using WinTok.Model;
using WinTok.Training;
using static TorchSharp.torch;
using static WinTok.Benchmarks.BenchModels;

namespace WinTok.Benchmarks;

/// <summary>
/// `wintok-bench train`: images/s and peak device memory of our training step (<see cref="WinTokTrainer.TrainStep"/>),
/// timed like deploy/bench/train_baseline.py times the reference's <c>Trainer.train_step</c> (issue 12 item 8): random
/// weights everywhere (so400m/16-256 WinTok with N semantic tokens, a SigLIP teacher of the encoder's shape, the
/// DINOv2 ViT-S/14 discriminator, the training LPIPS-VGG), random images already on the device, gradient accumulation,
/// and two phases, each a warm-up then timed iterations: <c>generator</c> (after the LR warm-up, before the
/// discriminator starts) and <c>full</c> (discriminator active, its warm-up and blur fade done). Peak memory is the
/// device's used memory sampled through NVML (<see cref="GpuMemorySampler"/>), as the baseline also reports it; the
/// baseline adds torch's own allocator peaks, which TorchSharp does not expose.
/// </summary>
internal static class BenchTrainCommand
{
    /// <summary>Iterations per epoch of the benchmark's schedule; only the schedules read it (the baseline uses the same).</summary>
    private const long IterationsPerEpoch = 10_000;

    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = "Encoder preset: " + string.Join(", ", WinTokPresets), DefaultValueFactory = _ => "so400m-16-256" };
        var semanticTokens = new Option<int>("--semantic-tokens") { Description = "Number of semantic tokens N.", DefaultValueFactory = _ => 32 };
        var batch = new Option<int>("--batch") { Description = "Images per iteration (the reference's local_bs).", DefaultValueFactory = _ => 32 };
        var gradAccu = new Option<int>("--grad-accu") { Description = "Iterations per optimizer step.", DefaultValueFactory = _ => 4 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed iterations first, per phase.", DefaultValueFactory = _ => 4 };
        var iters = new Option<int>("--iters") { Description = "Timed iterations per phase (a multiple of --grad-accu times optimizer steps in proportion).", DefaultValueFactory = _ => 8 };
        var phases = new Option<string>("--phases") { Description = "Comma-separated: generator, full.", DefaultValueFactory = _ => "generator,full" };
        var precision = new Option<string>("--precision") { Description = "bf16 (as the reference trains) or fp32.", DefaultValueFactory = _ => "bf16" };
        var device = new Option<string>("--device") { Description = "cuda or cpu.", DefaultValueFactory = _ => cuda.is_available() ? "cuda" : "cpu" };
        var checkOptimizer = new Option<bool>("--check-optimizer") { Description = "First compare the fused clip + AdamW kernels with the op-by-op path on random tensors." };
        var profile = new Option<int>("--profile-iters") { Description = "After the timed iterations, this many more with the device synchronized after each part of the step, reported per part (0: none).", DefaultValueFactory = _ => 0 };
        var command = new Command("train", "Training-step throughput and peak device memory, generator-only and with the discriminator.")
        {
            preset, semanticTokens, batch, gradAccu, warmup, iters, phases, precision, device, profile, checkOptimizer,
        };
        command.SetAction(parse => Run(parse.GetValue(preset)!, parse.GetValue(semanticTokens), parse.GetValue(batch), parse.GetValue(gradAccu),
            parse.GetValue(warmup), parse.GetValue(iters), parse.GetValue(phases)!, parse.GetValue(precision)!, new Device(parse.GetValue(device)!),
            parse.GetValue(profile), parse.GetValue(checkOptimizer)));
        return command;
    }

    private static int Run(string presetName, int semanticTokens, int batch, int gradAccu, int warmup, int iters, string phases, string precisionName, Device device, int profileIters, bool checkOptimizer = false)
    {
        if (checkOptimizer) CheckOptimizer(device);
        if (WinTokConfigFor(presetName, semanticTokens) is not { } config)
        {
            Console.Error.WriteLine($"Unknown preset '{presetName}'; choose one of {string.Join(", ", WinTokPresets)}");
            return 2;
        }
        if (precisionName is not ("bf16" or "fp32"))
        {
            Console.Error.WriteLine($"Precision must be bf16 or fp32, got '{precisionName}'");
            return 2;
        }
        var chosen = phases.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (chosen.Length == 0 || chosen.Any(p => p is not ("generator" or "full")))
        {
            Console.Error.WriteLine($"Phases must be generator and/or full, got '{phases}'");
            return 2;
        }
        var bf16 = precisionName == "bf16";
        // The reference trains with TF32 on for matmuls and cuDNN (args.tf32); its fp32 comparison runs without.
        backends.cuda.matmul.allow_tf32 = bf16;
        backends.cudnn.allow_tf32 = bf16;
        manual_seed(0);
        cuda.manual_seed_all(0);

        var clock = Stopwatch.StartNew();
        // Built on the CPU, moved, and only then handed to the trainer (TorchSharp's .to() replaces parameters).
        using var generator = new WinTokModel(config);
        generator.to(device);
        using var teacher = new SiglipTeacher(config.Encoder);
        teacher.to(device);
        using var discriminator = new DinoDiscriminator(new DinoVisionTransformer(DinoConfig.ViTSmall14), DiscriminatorConfig.Reference).MoveTo(device);
        using var lpips = new Lpips(LpipsVariant.TrainingVgg);
        lpips.to(device);
        var options = new TrainingOptions(new TrainingSchedule(IterationsPerEpoch, GradientAccumulation: gradAccu))
        {
            Precision = bf16 ? ScalarType.BFloat16 : ScalarType.Float32,
        };
        using var randomness = new TorchRandomness(0);
        var parts = new PartClock(device);
        using var trainer = new WinTokTrainer(generator, discriminator, teacher, new LpipsLoss(lpips), options, randomness, clock: parts);
        var size = config.Encoder.ImageSize;
        using var noise = new Generator(1); // drawn on the CPU, then moved: the same images on any device
        using var images0 = (rand([batch, 3, size, size], generator: noise) * 2 - 1).to(device);
        using var images1 = (rand([batch, 3, size, size], generator: noise) * 2 - 1).to(device);
        Emit("train", ("what", "setup"), ("preset", presetName), ("generator_parameters", generator.parameters().Sum(p => p.numel())),
            ("discriminator_head_parameters", discriminator.parameters().Sum(p => p.numel())), ("seconds", clock.Elapsed.TotalSeconds));

        var schedule = options.Schedule;
        foreach (var phase in chosen)
        {
            var first = FirstIteration(phase == "generator"
                ? (long)schedule.WarmupIterations + 4L * gradAccu
                : (long)(schedule.DiscriminatorStartIteration + 2 * schedule.DiscriminatorWarmupIterations) + 8L * gradAccu, gradAccu);
            using var memory = new GpuMemorySampler();
            for (var i = 0; i < warmup; i++) trainer.TrainStep(i % 2 == 0 ? images0 : images1, first + i);
            Synchronize(device);
            var timer = Stopwatch.StartNew();
            TrainStepResult? last = null;
            for (var i = warmup; i < warmup + iters; i++) last = trainer.TrainStep(i % 2 == 0 ? images0 : images1, first + i);
            Synchronize(device);
            var seconds = timer.Elapsed.TotalSeconds;
            Emit("train", ("phase", phase), ("precision", precisionName), ("preset", presetName), ("batch", batch), ("grad_accu", gradAccu),
                ("iters", iters), ("first_iter", first), ("img_per_s", batch * iters / seconds), ("seconds", seconds),
                ("nvml_peak_mib", memory.PeakMiB), ("nvml_start_mib", memory.Start), ("nvml_source", memory.Source),
                ("discriminator_active", last?.DiscriminatorActive), ("lv", last?.LvTotal));
            if (profileIters <= 0) continue;
            parts.Start();
            for (var i = warmup + iters; i < warmup + iters + profileIters; i++) trainer.TrainStep(i % 2 == 0 ? images0 : images1, first + i);
            foreach (var (part, seconds1) in parts.Stop())
                Emit("train", ("what", "part"), ("phase", phase), ("part", part), ("ms_per_iter", 1000 * seconds1 / profileIters));
        }
        return 0;
    }

    /// <summary>
    /// The fused clip + AdamW (<see cref="AdamW.ClipAndStep"/> on GPU float32) against the op-by-op path on the same
    /// random parameters and gradients, three steps with two groups (decayed and not) and clipping active: the largest
    /// relative difference of parameters and moments, and both norms.
    /// </summary>
    private static void CheckOptimizer(Device device)
    {
        using var scope = NewDisposeScope();
        using var noise = new Generator(7);
        long[] sizes = [1, 7, 1152, 4304 * 1152, 65536 * 3 + 5];
        (string, Parameter)[] Make() => sizes.Select((n, i) => ($"p{i}", new Parameter(rand([n], generator: new Generator((ulong)i)).to(device)))).ToArray();
        var (fusedParameters, plainParameters) = (Make(), Make());
        AdamW Optimizer((string, Parameter)[] parameters, bool fused) => new([
            new ParameterGroup("decay", parameters[..3], 0.05, 1e-3), new ParameterGroup("no_decay", parameters[3..], 0.0, 1e-3)], 0.9, 0.95, 1e-8)
        { UseFusedKernels = fused };
        using var fused = Optimizer(fusedParameters, true);
        using var plain = Optimizer(plainParameters, false);
        for (var stepIndex = 0; stepIndex < 3; stepIndex++)
        {
            foreach (var ((_, a), (_, b)) in fusedParameters.Zip(plainParameters))
            {
                var gradient = (randn(a.shape, generator: noise) * 3).to(device);
                a.grad = gradient.clone();
                b.grad = gradient.clone();
            }
            var fusedNorm = fused.ClipAndStep(1.0);
            var plainNorm = plain.ClipAndStep(1.0);
            fused.ZeroGrad();
            plain.ZeroGrad();
            // Differences relative to each tensor's largest magnitude: element-wise ratios blow up where a value crosses zero.
            static float Relative(Tensor a, Tensor b) => ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<float>();
            var worst = fusedParameters.Zip(plainParameters).Max(pair => Relative(pair.First.Item2, pair.Second.Item2));
            var fusedState = fused.CaptureState();
            var plainState = plain.CaptureState();
            var worstMoment = fusedState.Keys.Max(k => Math.Max(
                Relative(fusedState[k].ExpAvg, plainState[k].ExpAvg), Relative(fusedState[k].ExpAvgSq, plainState[k].ExpAvgSq)));
            Emit("train", ("what", "optimizer_check"), ("step", stepIndex + 1), ("fused_norm", (object?)fusedNorm), ("plain_norm", (object?)plainNorm),
                ("max_rel_param_diff", (object?)worst), ("max_rel_moment_diff", (object?)worstMoment), ("fused_kernels", (object?)(FusedAdamW.Shared is null ? "unavailable: " + FusedAdamW.UnavailableReason : "in use")));
        }
    }

    /// <summary>Per part of a step: wall time from the previous mark to this one, the device synchronized at each.</summary>
    private sealed class PartClock(Device device) : ITrainStepClock
    {
        private readonly Dictionary<string, double> seconds = [];
        private Stopwatch? watch;

        public void Start()
        {
            Synchronize(device);
            seconds.Clear();
            watch = Stopwatch.StartNew();
        }

        public void Mark(string part)
        {
            if (watch is null) return;
            Synchronize(device);
            seconds[part] = seconds.GetValueOrDefault(part) + watch.Elapsed.TotalSeconds;
            watch.Restart();
        }

        public IReadOnlyDictionary<string, double> Stop()
        {
            watch = null;
            return seconds;
        }
    }

    /// <summary>The first iteration of a phase as train_baseline.py picks it: on an accumulation window, not where the reference logs (multiples of 50).</summary>
    internal static long FirstIteration(long after, int gradAccu)
    {
        var first = after - after % gradAccu + gradAccu;
        return first % 50 == 0 ? first + gradAccu : first;
    }
}
