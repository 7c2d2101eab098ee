using System.CommandLine;
using System.Diagnostics;
using TorchSharp;
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
        var command = new Command("train", "Training-step throughput and peak device memory, generator-only and with the discriminator.")
        {
            preset, semanticTokens, batch, gradAccu, warmup, iters, phases, precision, device,
        };
        command.SetAction(parse => Run(parse.GetValue(preset)!, parse.GetValue(semanticTokens), parse.GetValue(batch), parse.GetValue(gradAccu),
            parse.GetValue(warmup), parse.GetValue(iters), parse.GetValue(phases)!, parse.GetValue(precision)!, new Device(parse.GetValue(device)!)));
        return command;
    }

    private static int Run(string presetName, int semanticTokens, int batch, int gradAccu, int warmup, int iters, string phases, string precisionName, Device device)
    {
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
        using var trainer = new WinTokTrainer(generator, discriminator, teacher, new LpipsLoss(lpips), options, randomness);
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
        }
        return 0;
    }

    /// <summary>The first iteration of a phase as train_baseline.py picks it: on an accumulation window, not where the reference logs (multiples of 50).</summary>
    internal static long FirstIteration(long after, int gradAccu)
    {
        var first = after - after % gradAccu + gradAccu;
        return first % 50 == 0 ? first + gradAccu : first;
    }
}
