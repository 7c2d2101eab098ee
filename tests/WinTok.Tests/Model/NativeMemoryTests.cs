using WinTok.Evaluation.ZeroShot;
using WinTok.Inference;
using WinTok.Model;
using WinTok.Tests.ZeroShot;
using static TorchSharp.torch;

namespace WinTok.Tests.Model;

/// <summary>Runs alone: the live tensor count is process-wide, so tests running beside it would move it.</summary>
[CollectionDefinition(nameof(NativeMemoryTests), DisableParallelization = true)]
public sealed class NativeMemoryCollection;

[Collection(nameof(NativeMemoryTests))]
public sealed class NativeMemoryTests
{
    [Fact]
    public void TokenizeInALoop_KeepsTheLiveTensorCountFlatOver1000Batches()
    {
        using var session = new TokenizerSession(new WinTokModel(TinyModels.Tiny).PrepareForInference(ScalarType.Float32), CPU);
        var levels = new byte[2 * 3 * 32 * 32];
        new Random(7).NextBytes(levels);
        // Warm-up: the two staging buffers the session alternates between are allocated once, one per batch.
        session.Tokenize(levels, 2, semantic: true);
        session.Tokenize(levels, 2, semantic: true);
        // Tensors other tests left to the garbage collector would otherwise be finalized during the loop.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var before = TorchSharp.torch.Tensor.TotalCount;

        for (var batch = 0; batch < 1000; batch++)
            session.Tokenize(levels, 2, semantic: true);

        Assert.Equal(before, TorchSharp.torch.Tensor.TotalCount);
    }

    [Fact]
    public void ZeroShotBatchesInALoop_KeepTheLiveTensorCountFlat()
    {
        var fixture = ZeroShotFixture.Get();
        var protocol = ZeroShotProtocol.WinTokImageNet with { ClassNames = ["tench", "goldfish"], Templates = ["a photo of a {}."] };
        using var classifier = ZeroShotClassifier.Build(fixture.Tower, protocol);
        using var features = nn.functional.normalize(randn(4, fixture.Tower.Width), dim: -1);
        using var targets = tensor(new long[] { 0, 1, 1, 0 });
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var before = TorchSharp.torch.Tensor.TotalCount;

        for (var batch = 0; batch < 20; batch++)
        {
            using (var embedded = fixture.Tower.EncodeTexts(protocol.Prompts(0, 2))) { }
            classifier.Score(features, targets);
        }

        Assert.Equal(before, TorchSharp.torch.Tensor.TotalCount);
    }
}

[Collection(nameof(NativeMemoryTests))]
public sealed class TrainerNativeMemoryTests
{
    [Fact]
    public void TrainStep_InALoop_KeepsTheLiveTensorCountFlat()
    {
        var fixture = WinTok.Tests.Training.TrainingFixture.Get(WinTok.TestSupport.TestFixtures.Folder("training"));
        using var generator = fixture.LoadGenerator();
        using var discriminator = fixture.LoadDiscriminator();
        using var teacher = fixture.LoadTeacher();
        using var lpips = fixture.BuildLpips();
        using var random = new WinTok.Training.TorchRandomness(3);
        using var trainer = new WinTok.Training.WinTokTrainer(generator, discriminator, teacher, new WinTok.Training.LpipsLoss(lpips), fixture.Options(), random);
        long Step(int iteration)
        {
            trainer.TrainStep(fixture.Batch(iteration), iteration);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            return TorchSharp.torch.Tensor.TotalCount;
        }
        // Iterations in the discriminator phase, where every part of the step runs; the first steps create the
        // optimizer moments and the blur kernel, which live on.
        for (var i = 9; i < 13; i++) Step(i);
        var before = Step(13);

        var after = Step(15);

        Assert.Equal(before, after);
    }
}
