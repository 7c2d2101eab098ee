using System.Text.Json;
using WinTok.Training;
using static TorchSharp.torch;

namespace WinTok.Tests.Training;

/// <summary>
/// The training components on the fixture's initial weights against the reference's probes (probes.safetensors):
/// teacher, discriminator per input branch and per block, DiffAug with recorded draws; and the schedule and
/// parameter groups, which need no network.
/// </summary>
public sealed class TrainingParityProbeTests
{
    public static TheoryData<string> Fixtures() => TrainingFixture.All();

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void TrainingParity_TeacherProbe_MatchesTheReference(string folder)
    {
        var fixture = TrainingFixture.Get(folder);
        using var scope = NewDisposeScope();
        using var generator = fixture.LoadGenerator();
        using var teacher = fixture.LoadTeacher();

        using var output = teacher.Forward(generator.ScaleForSiglip(fixture.Batch(0)));

        AssertClose(fixture.Probes["teacher.last_hidden_state"], output.LastHiddenState, "teacher.last_hidden_state");
        AssertClose(fixture.Probes["teacher.pooler_output"], output.PoolerOutput, "teacher.pooler_output");
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void TrainingParity_DiscriminatorProbe_MatchesPerBranchAndBlock(string folder)
    {
        var fixture = TrainingFixture.Get(folder);
        using var scope = NewDisposeScope();
        using var discriminator = fixture.LoadDiscriminator();
        var images = fixture.Batch(0);
        var failures = new List<string>();
        foreach (var (branch, coin) in new[] { ("area", 0.75), ("crop", 0.25) })
        {
            var random = new ReplayRandomness(new Dictionary<string, Tensor>());
            random.Queue("coin", coin);
            if (branch == "crop") random.Queue("crop", (3L, 5L)); // the probe forced top 3, left 5
            var input = discriminator.Preprocess(images, random);
            random.AssertConsumed();
            failures.AddRange(Compare(fixture.Probes[$"disc.{branch}.dino_input"], input, $"{branch}.dino_input"));
            var features = discriminator.Backbone.IntermediateLayers(input, fixture.DiscriminatorConfig.KeyDepths);
            for (var i = 0; i < features.Count; i++)
            {
                var depth = fixture.DiscriminatorConfig.KeyDepths[i];
                failures.AddRange(Compare(fixture.Probes[$"disc.{branch}.block{depth}.patch_tokens"], features[i].PatchTokens, $"{branch}.block{depth}.patch_tokens"));
                failures.AddRange(Compare(fixture.Probes[$"disc.{branch}.block{depth}.cls_token"], features[i].ClassToken, $"{branch}.block{depth}.cls_token"));
            }
            using (no_grad())
                failures.AddRange(Compare(fixture.Probes[$"disc.{branch}.logits"], discriminator.Score(input), $"{branch}.logits"));
        }
        Assert.True(failures.Count == 0, string.Join("; ", failures));
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void TrainingParity_DiffAugProbe_MatchesWithTheRecordedDraws(string folder)
    {
        var fixture = TrainingFixture.Get(folder);
        var probes = fixture.Records.GetProperty("probes");
        using var scope = NewDisposeScope();
        var failures = new List<string>();
        foreach (var (name, batch) in new[] { ("diffaug_blur", 0), ("diffaug_bcr", 1) })
        {
            var probe = probes.GetProperty(name);
            using var augment = new DiffAug(probe.GetProperty("prob").GetDouble(), probe.GetProperty("cutout").GetDouble());
            var random = new ReplayRandomness(new Dictionary<string, Tensor>());
            random.Queue("switches", fixture.Probes[name + ".flags_rand"]);
            random.Queue("uniforms", fixture.Probes[name + ".rand01"]);

            var output = augment.Augment(fixture.Batch(batch), probe.GetProperty("blur_schedule").GetDouble(), random);

            random.AssertConsumed();
            failures.AddRange(Compare(fixture.Probes[name + ".output"], output, name + ".output"));
            if (fixture.Probes.TryGetValue(name + ".blur_kernel", out var kernel))
            {
                Assert.Equal(probe.GetProperty("blur_radius").GetInt32(), augment.CachedBlurRadius);
                failures.AddRange(Compare(kernel, augment.CachedBlurKernel!, name + ".blur_kernel"));
            }
        }
        Assert.True(failures.Count == 0, string.Join("; ", failures));
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void TrainingParity_Schedules_GiveTheReferencesLearningRatesExactly(string folder)
    {
        var fixture = TrainingFixture.Get(folder);
        var schedule = fixture.Options().Schedule;
        var initial = fixture.Config.Keys.Contains("optimizer") ? InitialRates(fixture) : throw new InvalidDataException("config.json has no optimizer section");

        for (var i = 0; i < fixture.Iterations; i++)
        {
            var step = fixture.Step(i);
            var plan = schedule.At(i);
            var expectedG = step.GetProperty("lr_g_groups").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            Assert.Equal(expectedG, initial.Generator.Select(lr => plan.GeneratorLrMultiplier * lr).ToArray());
            var lrD = step.GetProperty("lr_d_groups");
            if (lrD.ValueKind == JsonValueKind.Null)
                Assert.Null(plan.DiscriminatorLrMultiplier);
            else
                Assert.Equal(lrD.EnumerateArray().Select(e => e.GetDouble()).ToArray(), initial.Discriminator.Select(lr => plan.DiscriminatorLrMultiplier!.Value * lr).ToArray());
            Assert.Equal(step.GetProperty("stepping").GetBoolean(), plan.Stepping);
            Assert.Equal(step.GetProperty("warmup_disc_schedule").GetDouble(), plan.DiscriminatorWarmup);
            Assert.Equal(step.GetProperty("fade_blur_schedule").GetDouble(), plan.BlurFade);
            Assert.Equal(step.GetProperty("disc_active").GetBoolean(), plan.DiscriminatorActive);
        }
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void TrainingParity_ParameterGroups_AreTheReferences(string folder)
    {
        var fixture = TrainingFixture.Get(folder);
        using var generator = fixture.LoadGenerator();
        using var discriminator = fixture.LoadDiscriminator();
        var options = fixture.Options();
        var optimizer = TrainingFixture.Dictionary(fixture.Config, "optimizer");

        foreach (var (model, key, lr, wd) in new[]
        {
            ((TorchSharp.torch.nn.Module)generator, "generator", options.LearningRate, options.WeightDecay),
            (discriminator, "discriminator", options.DiscriminatorLearningRate, options.DiscriminatorWeightDecay),
        })
        {
            var groups = ParameterGroups.Partition(model.named_parameters(), lr, wd);
            var expected = TrainingFixture.List(TrainingFixture.Dictionary(optimizer, key), "groups")
                .Cast<IReadOnlyDictionary<string, object?>>().ToList();
            Assert.Equal(expected.Count, groups.Count);
            for (var g = 0; g < groups.Count; g++)
            {
                Assert.Equal(TrainingFixture.List(expected[g], "params").Cast<string>(), groups[g].Parameters.Select(p => p.Name));
                Assert.Equal(TrainingFixture.Number(expected[g]["weight_decay"]), groups[g].WeightDecay);
                Assert.Equal(TrainingFixture.Number(expected[g]["init_lr"]), groups[g].InitialLearningRate);
            }
        }
    }

    private static (double[] Generator, double[] Discriminator) InitialRates(TrainingFixture fixture)
    {
        var optimizer = TrainingFixture.Dictionary(fixture.Config, "optimizer");
        double[] Rates(string key) => TrainingFixture.List(TrainingFixture.Dictionary(optimizer, key), "groups")
            .Cast<IReadOnlyDictionary<string, object?>>().Select(g => TrainingFixture.Number(g["init_lr"])).ToArray();
        return (Rates("generator"), Rates("discriminator"));
    }

    /// <summary>
    /// The house tolerance for float32 parity, allclose(rtol 1e-4, atol 1e-5), with atol taken relative to the
    /// tensor's largest magnitude when that exceeds 1: deep stacks (the 12-block DINOv2 reaches |x| = 12) carry about
    /// 1e-6 of their scale as float32 noise in every element, near-zero ones included, and the reference ran
    /// PyTorch 2.11's CPU kernels where we run libtorch 2.10's. Names the worst error.
    /// </summary>
    internal static IEnumerable<string> Compare(Tensor expected, Tensor actual, string name)
    {
        if (!expected.shape.SequenceEqual(actual.shape))
        {
            yield return $"{name}: shape ({string.Join(", ", actual.shape)}), reference ({string.Join(", ", expected.shape)})";
            yield break;
        }
        using var scope = NewDisposeScope();
        var a = actual.detach().to(ScalarType.Float32);
        var atol = 1e-5 * Math.Max(1.0, expected.abs().max().item<float>());
        var excess = ((a - expected).abs() - expected.abs() * 1e-4 - atol).max().item<float>();
        if (excess > 0)
            yield return $"{name}: max abs error {(a - expected).abs().max().item<float>():E2} (largest reference value {expected.abs().max().item<float>():E2})";
    }

    private static void AssertClose(Tensor expected, Tensor actual, string name)
    {
        var failures = Compare(expected, actual, name).ToList();
        Assert.True(failures.Count == 0, string.Join("; ", failures));
    }
}
