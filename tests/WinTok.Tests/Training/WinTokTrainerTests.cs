using TorchSharp;
using WinTok.Checkpoints;
using WinTok.Evaluation;
using WinTok.Model;
using WinTok.Training;
using static TorchSharp.torch;

namespace WinTok.Tests.Training;

/// <summary>The trainer's state round trip and its bf16 path, on the training fixture's tiny configuration.</summary>
public sealed class WinTokTrainerTests
{
    private static string Folder => WinTok.TestSupport.TestFixtures.Folder("training");

    [Fact]
    public void RestoreState_OfATrainerStoppedMidAccumulation_ContinuesWithIdenticalLosses()
    {
        var fixture = TrainingFixture.Get(Folder);
        const int stop = 11;   // iteration 10 accumulated gradients that iteration 11 steps with; LeCAM and blur are live
        const int end = 15;
        using var lpips = fixture.BuildLpips();

        var uninterrupted = new List<TrainStepResult>();
        using (var models = new Models(fixture))
        {
            var random = new ReplayRandomness(fixture.Recorded);
            using var trainer = models.Trainer(lpips, random);
            for (var i = 0; i < end; i++)
            {
                random.Expect(i);
                using var scope = NewDisposeScope();
                var result = trainer.TrainStep(fixture.Batch(i), i);
                if (i >= stop) uninterrupted.Add(result);
            }
        }

        TrainerState state;
        using (var models = new Models(fixture))
        {
            var random = new ReplayRandomness(fixture.Recorded);
            using var trainer = models.Trainer(lpips, random);
            for (var i = 0; i < stop; i++)
            {
                random.Expect(i);
                using var scope = NewDisposeScope();
                trainer.TrainStep(fixture.Batch(i), i);
            }
            state = trainer.CaptureState();
        }

        using (state)
        using (var models = new Models(fixture))
        {
            Assert.Equal(stop, state.NextIteration);
            Assert.NotEmpty(state.GeneratorGradients);
            Assert.NotEqual(0, state.LecamEmaReal);
            var random = new ReplayRandomness(fixture.Recorded);
            using var trainer = models.Trainer(lpips, random);
            trainer.RestoreState(state);
            Assert.Equal(stop, trainer.NextIteration);
            for (var i = stop; i < end; i++)
            {
                random.Expect(i);
                using var scope = NewDisposeScope();
                var resumed = trainer.TrainStep(fixture.Batch(i), i);
                var expected = uninterrupted[i - stop];
                Assert.Equal(expected with { PixelTokenIds = null!, GeneratorLearningRates = null!, DiscriminatorLearningRates = null },
                    resumed with { PixelTokenIds = null!, GeneratorLearningRates = null!, DiscriminatorLearningRates = null });
                Assert.Equal(expected.PixelTokenIds, resumed.PixelTokenIds);
                Assert.Equal(expected.GeneratorLearningRates, resumed.GeneratorLearningRates);
                Assert.Equal(expected.DiscriminatorLearningRates!, resumed.DiscriminatorLearningRates!);
            }
        }
    }

    [Fact]
    public void RestoreState_WhenAStateDictDoesNotFit_FailsNamingTheTensor()
    {
        var fixture = TrainingFixture.Get(Folder);
        using var lpips = fixture.BuildLpips();
        using var models = new Models(fixture);
        using var trainer = models.Trainer(lpips, new ReplayRandomness(fixture.Recorded));
        using var state = trainer.CaptureState();
        var generator = state.Generator.ToDictionary(p => p.Key, p => p.Value);
        generator["conv_out.weight"] = zeros(3, 3, 5, 5);

        var error = Assert.Throws<CheckpointMismatchException>(() => trainer.RestoreState(state with { Generator = generator }));

        Assert.Contains("conv_out.weight", error.Message);
        generator["conv_out.weight"].Dispose();
    }

    [Fact]
    public void TrainStep_InBFloat16_RunsWithFiniteLossesAndGradientsNearTheFloat32Reference()
    {
        var fixture = TrainingFixture.Get(Folder);
        var run = TrainingRun.Get(Folder, ScalarType.BFloat16);
        var failures = new List<string>();
        var gaps = new Dictionary<string, double>();
        for (var i = 0; i < fixture.Iterations; i++)
        {
            var result = run.Results[i];
            var losses = fixture.Step(i).GetProperty("losses");
            foreach (var (name, value) in new (string, double?)[]
            {
                ("L1", result.L1), ("L2", result.L2), ("Lpips", result.Lpips), ("Lnll", result.Lnll), ("Lq", result.Lq), ("Le", result.Le),
                ("Ldistill", result.Ldistill), ("Lv_total", result.LvTotal), ("Lg", result.Lg), ("Ld_total", result.LdTotal),
            })
            {
                if (value is not { } v) continue;
                if (!double.IsFinite(v)) failures.Add($"iteration {i} {name} = {v}");
                var reference = losses.GetProperty(name).GetDouble();
                gaps[name] = Math.Max(gaps.GetValueOrDefault(name), Math.Abs(v - reference) / Math.Abs(reference));
            }
            foreach (var norm in new[] { result.GeneratorGradNorm, result.DiscriminatorGradNorm })
                if (norm is { } n && !double.IsFinite(n)) failures.Add($"iteration {i} gradient norm = {n}");
        }
        TestContext.Current.SendDiagnosticMessage("bf16 vs the float32 reference, largest relative gap per term: " +
            string.Join(", ", gaps.Select(g => $"{g.Key} {g.Value:E2}")));
        if (Environment.GetEnvironmentVariable("WINTOK_TRAINING_REPORT") is { Length: > 0 } path)
            File.AppendAllText(path, "bf16 largest relative gap to the float32 reference: " + string.Join(", ", gaps.Select(g => $"{g.Key} {g.Value:E2}")) + "\n");
        Assert.True(failures.Count == 0, string.Join("; ", failures));
        // The float32 port meets the reference within 1e-7 at the first iteration; bf16 must visibly differ, or it did not run.
        var firstGap = Math.Abs(run.Results[0].Lnll - fixture.Step(0).GetProperty("losses").GetProperty("Lnll").GetDouble());
        Assert.True(firstGap > 1e-5 * run.Results[0].Lnll, $"bf16 Lnll at the first iteration equals float32's to {firstGap:E2}: autocast did not take effect");
        // Loose by design (bf16 rounds at 4e-3): the reconstruction, VQ and distillation terms follow the float32 run.
        foreach (var name in new[] { "L1", "L2", "Lnll", "Lq", "Ldistill" })
            Assert.True(gaps[name] < 0.05, $"bf16 {name} strays {gaps[name]:E2} from the float32 reference");
        Assert.True(run.FinalGenerator.Values.All(t => t.dtype == ScalarType.Float32), "master weights must stay float32");
    }

    /// <summary>The fixture's networks, freshly loaded.</summary>
    private sealed class Models(TrainingFixture fixture) : IDisposable
    {
        public WinTokModel Generator { get; } = fixture.LoadGenerator();
        public DinoDiscriminator Discriminator { get; } = fixture.LoadDiscriminator();
        public SiglipTeacher Teacher { get; } = fixture.LoadTeacher();

        public WinTokTrainer Trainer(Lpips lpips, ITrainingRandomness random) =>
            new(Generator, Discriminator, Teacher, new LpipsLoss(lpips), fixture.Options(), random);

        public void Dispose()
        {
            Generator.Dispose();
            Discriminator.Dispose();
            Teacher.Dispose();
        }
    }
}
