using TorchSharp;
using WinTok.Checkpoints;
using WinTok.Model;
using WinTok.Training;
using static TorchSharp.torch;

namespace WinTok.Tests.Training;

/// <summary>The trainer's pure functions and building blocks, and how they fail on bad input.</summary>
public sealed class TrainingComponentTests
{
    [Fact]
    public void CosineWithWarmup_RisesLinearlyThenFallsToTheEndRatio()
    {
        Assert.Equal(0.0, TrainingSchedule.CosineWithWarmup(0, 4, 20, 0, 0.1));
        Assert.Equal(0.5, TrainingSchedule.CosineWithWarmup(2, 4, 20, 0, 0.1));
        Assert.Equal(1.0, TrainingSchedule.CosineWithWarmup(4, 4, 20, 0, 0.1));
        Assert.Equal(0.1, TrainingSchedule.CosineWithWarmup(19, 4, 20, 0, 0.1), 12); // p = 1 at max - 1
    }

    [Theory]
    [InlineData(-1.0, 0.0, 1.0)]
    [InlineData(0.0, 0.0, 1.0)]
    [InlineData(1.0, 0.25, 0.875)]
    [InlineData(4.0, 1.0, 0.5)]
    [InlineData(8.0, 1.0, 0.0)]
    [InlineData(20.0, 1.0, 0.0)]
    public void DiscriminatorSchedules_FollowTrainPyWithTheTrainersTinyValueRule(double discriminatorIteration, double warmup, double fade)
    {
        Assert.Equal(warmup, TrainingSchedule.DiscriminatorWarmup(discriminatorIteration, 4));
        Assert.Equal(fade, TrainingSchedule.BlurFade(discriminatorIteration, 4));
    }

    [Fact]
    public void DiscriminatorWarmup_BelowOneMillionth_IsZeroSoTheDiscriminatorStaysOff()
    {
        Assert.Equal(0, TrainingSchedule.DiscriminatorWarmup(1e-7, 1));
        Assert.False(new TrainingSchedule(1000, DiscriminatorStartEpochs: 0.5).At(500).DiscriminatorActive);
        Assert.True(new TrainingSchedule(1000, DiscriminatorStartEpochs: 0.5).At(501).DiscriminatorActive);
    }

    [Fact]
    public void At_WithGradientAccumulation_StepsOnEveryNthIterationOnly()
    {
        var schedule = new TrainingSchedule(100, GradientAccumulation: 4);

        Assert.Equal([false, false, false, true, false, false, false, true], Enumerable.Range(0, 8).Select(i => schedule.At(i).Stepping));
    }

    [Fact]
    public void Validate_WhenTheScheduleIsImpossible_NamesEveryProblem()
    {
        var error = Assert.Throws<ArgumentException>(() => new TrainingSchedule(0, GradientAccumulation: 0, WarmupEpochs: 0).Validate());

        Assert.Contains("iterations per epoch", error.Message);
        Assert.Contains("gradient accumulation", error.Message);
        Assert.Contains("warm-up", error.Message);
    }

    [Theory]
    [InlineData("query_tokens", 2, true)]
    [InlineData("query_tokens_pos_embed", 2, false)]
    [InlineData("encoder.vision_model.embeddings.position_embedding.weight", 2, false)]
    [InlineData("quantizer.codebooks.0.codebook.weight", 2, true)]
    [InlineData("encoder.vision_model.encoder.layers.0.self_attn.q_proj.weight", 2, true)]
    [InlineData("encoder.vision_model.encoder.layers.0.self_attn.q_proj.bias", 1, false)]
    [InlineData("heads.0.0.1.weight", 1, false)]
    [InlineData("some.bn.weight", 2, false)]
    public void IsDecayed_FollowsTheReferencesNoDecayRules(string name, int dims, bool decayed)
    {
        using var parameter = new TorchSharp.Modules.Parameter(zeros(Enumerable.Repeat(2L, dims).ToArray()));

        Assert.Equal(decayed, ParameterGroups.IsDecayed(name, parameter));
    }

    [Fact]
    public void AdamWStep_FromZeroMoments_MovesEachWeightByTheClosedFormUpdate()
    {
        using var weight = new TorchSharp.Modules.Parameter(tensor(new[] { 1.0f, -2.0f, 0.5f }));
        using var group = new ZeroGradOnDispose(weight);
        weight.grad = tensor(new[] { 0.1f, -0.3f, 0.0f });
        var groups = new[] { new ParameterGroup("decay", [("w", weight)], weightDecay: 0.1, initialLearningRate: 0.01) };
        using var optimizer = new AdamW(groups, 0.9, 0.95, 1e-6);

        optimizer.Step();

        // Step 1: m = 0.1 g, v = 0.05 g^2, bias-corrected m/sqrt(v) = sign(g) |g| / (|g| + eps'), so w <- w (1 - lr wd) - lr g / (|g| + eps).
        var expected = new[] { 1.0 * (1 - 0.001) - 0.01 * 0.1 / (0.1 + 1e-6), -2.0 * (1 - 0.001) + 0.01 * 0.3 / (0.3 + 1e-6), 0.5 * (1 - 0.001) };
        var actual = weight.data<float>().ToArray();
        for (var i = 0; i < 3; i++) Assert.Equal(expected[i], actual[i], 6);
        using var state = new DisposableMoments(optimizer.CaptureState());
        Assert.Equal(1.0, state.Moments["w"].Step);
    }

    [Fact]
    public void AdamWRestoreState_WithMomentsOfAnotherShape_FailsNamingTheParameter()
    {
        using var weight = new TorchSharp.Modules.Parameter(zeros(3));
        using var optimizer = new AdamW([new ParameterGroup("g", [("w", weight)], 0, 1e-3)], 0.9, 0.95, 1e-6);
        var moments = new Dictionary<string, AdamMoments> { ["w"] = new(1, zeros(4), zeros(4)) };

        var error = Assert.Throws<ArgumentException>(() => optimizer.RestoreState(moments));

        Assert.Contains("w", error.Message);
        Assert.Contains("(4)", error.Message);
        moments["w"].Dispose();
    }

    [Fact]
    public void ClipGradNorm_AboveTheLimit_ScalesToItAndReturnsTheNormBefore()
    {
        using var a = new TorchSharp.Modules.Parameter(zeros(2));
        using var b = new TorchSharp.Modules.Parameter(zeros(1));
        using var clearA = new ZeroGradOnDispose(a);
        using var clearB = new ZeroGradOnDispose(b);
        a.grad = tensor(new[] { 3.0f, 0.0f });
        b.grad = tensor(new[] { 4.0f });

        var norm = GradientClipping.ClipGradNorm([a, b], 1.0);

        Assert.Equal(5.0f, norm);
        Assert.Equal(1.0, GradientClipping.GradNorm([a, b]), 5);
    }

    [Fact]
    public void ClipGradNorm_BelowTheLimit_LeavesTheGradientsAlone()
    {
        using var a = new TorchSharp.Modules.Parameter(zeros(2));
        using var clear = new ZeroGradOnDispose(a);
        a.grad = tensor(new[] { 0.3f, 0.4f });

        Assert.Equal(0.5f, GradientClipping.ClipGradNorm([a], 8.0), 6);
        Assert.Equal([0.3f, 0.4f], a.grad!.data<float>().ToArray());
    }

    [Fact]
    public void LecamEma_UpdatesBeforeUseWithDecay0999()
    {
        var lecam = new LecamEma();
        using var real = tensor(new[] { 1.0f, 3.0f });
        using var fake = tensor(new[] { -2.0f });

        lecam.Update(real, fake);
        using var penalty = lecam.Regularizer(real, fake);

        Assert.Equal(0.002, lecam.Real, 12);
        Assert.Equal(-0.002, lecam.Fake, 12);
        // mean(relu(real + 0.002)^2) + mean(relu(0.002 + 2)^2)
        Assert.Equal((Math.Pow(1.002, 2) + Math.Pow(3.002, 2)) / 2 + Math.Pow(2.002, 2), penalty.item<float>(), 4);
    }

    [Fact]
    public void DiffAug_BlurKernel_IsCachedByRadiusAsTheReferenceDoes()
    {
        using var augment = new DiffAug(0, 0.2); // probability 0: blur only, no draws
        using var images = rand(1, 3, 32, 32);
        var random = new ReplayRandomness(new Dictionary<string, Tensor>());

        augment.Augment(images, 0.95, random).Dispose();     // sigma 3.8, radius 11
        var first = augment.CachedBlurKernel!.clone();
        augment.Augment(images, 0.93, random).Dispose();     // sigma 3.72, same radius: the first sigma's kernel stays
        Assert.True(first.equal(augment.CachedBlurKernel!).all().item<bool>());
        augment.Augment(images, 0.5, random).Dispose();      // radius 6: rebuilt

        Assert.Equal(6, augment.CachedBlurRadius);
        Assert.Equal(13, augment.CachedBlurKernel!.shape[0]);
        Assert.Equal(1.0, augment.CachedBlurKernel!.sum().item<float>(), 5);
        first.Dispose();
    }

    [Fact]
    public void TorchRandomness_RestoredState_ReplaysTheSameDraws()
    {
        using var random = new TorchRandomness(7);
        random.AugmentationSwitches().Dispose();
        using var state = random.CaptureState();
        using var first = random.AugmentationUniforms(2, CPU);
        var coin = random.ResizeCoin();
        var crop = random.CropOffset(9, 9);

        random.RestoreState(state);

        using var again = random.AugmentationUniforms(2, CPU);
        Assert.True(first.equal(again).all().item<bool>());
        Assert.Equal(coin, random.ResizeCoin());
        Assert.Equal(crop, random.CropOffset(9, 9));
    }

    [Fact]
    public void AutocastRegion_RunsProductsLowNormsFullAndSuspendsInside()
    {
        using var scope = NewDisposeScope();
        using var linear = nn.Linear(4, 4);
        using var norm = nn.LayerNorm(4);
        var x = rand(2, 4);
        using (Autocast.Enter(ScalarType.BFloat16))
        {
            var y = Dense.Forward(linear, x, InferenceKernels.Torch);
            Assert.Equal(ScalarType.BFloat16, y.dtype);
            Assert.Equal(ScalarType.Float32, Norm.Forward(norm, y, InferenceKernels.Torch).dtype);
            using (Autocast.Suspend())
                Assert.Equal(ScalarType.Float32, Dense.Forward(linear, x, InferenceKernels.Torch).dtype);
            Assert.Equal(ScalarType.BFloat16, Autocast.LowPrecision);
        }
        Assert.Null(Autocast.LowPrecision);
        Assert.Equal(ScalarType.Float32, Dense.Forward(linear, x, InferenceKernels.Torch).dtype);
    }

    [Fact]
    public void FromReferenceArgs_ReadsTheReferencesFieldsAndRejectsWhatTheTrainerDoesNotImplement()
    {
        var args = new Dictionary<string, object?>
        {
            ["lr"] = 1e-4, ["optim_beta"] = "0.8_0.99", ["grad_accu"] = 2L, ["bf16"] = false, ["dcrit"] = "hg", ["gada"] = 1L,
        };

        var options = TrainingOptions.FromReferenceArgs(args, 100);

        Assert.Equal(1e-4, options.LearningRate);
        Assert.Equal((0.8, 0.99), options.Betas);
        Assert.Equal(2, options.Schedule.GradientAccumulation);
        Assert.Equal(ScalarType.Float32, options.Precision);
        Assert.Contains("'lamb' is not supported", Assert.Throws<ArgumentException>(() => TrainingOptions.FromReferenceArgs(new Dictionary<string, object?> { ["optimizer"] = "lamb" }, 100)).Message);
        Assert.Contains("0.9_0.95", Assert.Throws<ArgumentException>(() => TrainingOptions.FromReferenceArgs(new Dictionary<string, object?> { ["optim_beta"] = "0.9,0.95" }, 100)).Message);
        Assert.Contains("'xx' is not a discriminator criterion", Assert.Throws<ArgumentException>(() => TrainingOptions.FromReferenceArgs(new Dictionary<string, object?> { ["dcrit"] = "xx" }, 100)).Message);
    }

    [Fact]
    public void Validate_WhenOptionsAreImpossible_NamesEveryProblem()
    {
        var options = new TrainingOptions(new TrainingSchedule(10)) { LearningRate = -1, Betas = (1.0, 0.5), OptimizerEps = 0 };

        var error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("lr must be", error.Message);
        Assert.Contains("optim_beta", error.Message);
        Assert.Contains("optim_eps", error.Message);
    }

    [Fact]
    public void TeacherFromHfStateDict_WhenTheInProjectionIsMisshaped_FailsNamingItAndBothShapes()
    {
        var fixture = TrainingFixture.Get(WinTok.TestSupport.TestFixtures.Folder("training"));
        using var checkpoint = CheckpointFile.Read(Path.Combine(fixture.Folder, "teacher.safetensors"));
        var weights = checkpoint.StateDict.ToDictionary(p => p.Key, p => p.Value);
        using var wrong = zeros(2 * fixture.Encoder.HiddenSize, fixture.Encoder.HiddenSize);
        weights["vision_model.head.attention.in_proj_weight"] = wrong;

        var error = Assert.Throws<CheckpointMismatchException>(() => SiglipTeacher.FromHfStateDict(weights, fixture.Encoder));

        Assert.Contains("vision_model.head.attention.in_proj_weight", error.Message);
        Assert.Contains($"[{3 * fixture.Encoder.HiddenSize}, {fixture.Encoder.HiddenSize}]", error.Message);
    }

    [Fact]
    public void TeacherFromHfStateDict_WhenTheHeadIsMissing_NamesTheFilesKeys()
    {
        var fixture = TrainingFixture.Get(WinTok.TestSupport.TestFixtures.Folder("training"));
        using var checkpoint = CheckpointFile.Read(Path.Combine(fixture.Folder, "teacher.safetensors"));
        var weights = checkpoint.StateDict.Where(p => !p.Key.StartsWith("vision_model.head.attention.in_proj", StringComparison.Ordinal))
            .ToDictionary(p => p.Key, p => p.Value);
        weights["text_model.embeddings.token_embedding.weight"] = checkpoint.StateDict["vision_model.post_layernorm.weight"]; // ignored, as from_pretrained does

        var error = Assert.Throws<CheckpointMismatchException>(() => SiglipTeacher.FromHfStateDict(weights, fixture.Encoder));

        Assert.Equal(["vision_model.head.attention.in_proj_bias", "vision_model.head.attention.in_proj_weight"], error.Missing.Order(StringComparer.Ordinal));
        Assert.Empty(error.Unexpected);
    }

    [Fact]
    public void DinoFromStateDict_WhenATensorIsMisshaped_FailsNamingIt()
    {
        var config = new DinoConfig(EmbedDim: 32, Depth: 2, Heads: 2, ImageSize: 56);
        using var reference = new DinoVisionTransformer(config);
        var weights = reference.state_dict().ToDictionary(p => p.Key, p => p.Value);
        using var wrong = zeros(32, 3, 16, 16);
        weights["patch_embed.proj.weight"] = wrong;

        var error = Assert.Throws<CheckpointMismatchException>(() => DinoVisionTransformer.FromStateDict(weights, config));

        Assert.Contains("patch_embed.proj.weight", error.Message);
        Assert.Contains("[32, 3, 14, 14]", error.Message);
    }

    [Fact]
    public void Discriminator_OnAnImageOfTheBackbonesGrid_ResizesWithoutDrawing()
    {
        var config = new DinoConfig(EmbedDim: 32, Depth: 3, Heads: 2, ImageSize: 56);
        using var discriminator = new DinoDiscriminator(new DinoVisionTransformer(config), new DiscriminatorConfig([0, 2]));
        using var images = rand(2, 3, 28, 28) * 2 - 1;

        using var logits = discriminator.Forward(images, new ReplayRandomness(new Dictionary<string, Tensor>()));

        Assert.Equal([2L, 2 * 4], logits.shape); // two heads, (28 / 14)^2 tokens each; no coin drawn
        Assert.DoesNotContain(discriminator.parameters(), p => !p.requires_grad);
        Assert.Equal(2 * 10, discriminator.parameters().Count()); // per head 3 convs and 2 norms, weight and bias each; the backbone is hidden
    }

    [Fact]
    public void Trainer_WhenLpipsIsWeightedButMissing_RefusesToStart()
    {
        var fixture = TrainingFixture.Get(WinTok.TestSupport.TestFixtures.Folder("training"));
        using var generator = fixture.LoadGenerator();
        using var discriminator = fixture.LoadDiscriminator();
        using var teacher = fixture.LoadTeacher();

        var error = Assert.Throws<ArgumentException>(() => new WinTokTrainer(generator, discriminator, teacher, null, fixture.Options(), new TorchRandomness(1)));

        Assert.Contains("LPIPS", error.Message);
    }

    private sealed class ZeroGradOnDispose(TorchSharp.Modules.Parameter parameter) : IDisposable
    {
        public void Dispose()
        {
            using var grad = parameter.grad;
            if (grad is not null) parameter.grad = null;
        }
    }

    private sealed class DisposableMoments(IReadOnlyDictionary<string, AdamMoments> moments) : IDisposable
    {
        public IReadOnlyDictionary<string, AdamMoments> Moments { get; } = moments;

        public void Dispose()
        {
            foreach (var m in Moments.Values) m.Dispose();
        }
    }
}
