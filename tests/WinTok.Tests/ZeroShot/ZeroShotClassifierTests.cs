using WinTok.Evaluation.ZeroShot;
using WinTok.Inference;
using WinTok.Tests.Checkpoints;
using static TorchSharp.torch;

namespace WinTok.Tests.ZeroShot;

/// <summary>Protocol details, counting, and the classifier cache.</summary>
public sealed class ZeroShotClassifierTests
{
    private static ZeroShotFixture Fixture => ZeroShotFixture.Get();

    private static ZeroShotProtocol TwoClasses => ZeroShotProtocol.WinTokImageNet with
    {
        ClassNames = ["American robin", "Gila monster"],
        Templates = ["a photo of a {}.", "{} {{sic}}"],
    };

    [Fact]
    public void Prompts_UnderWinTok_LowerCaseTheNames_AndUnderUniTok_KeepThem()
    {
        Assert.Equal(["a photo of a american robin.", "american robin {sic}", "a photo of a gila monster.", "gila monster {sic}"], TwoClasses.Prompts(0, 2));
        Assert.Equal(["a photo of a Gila monster.", "Gila monster {sic}"], (TwoClasses with { LowercaseClassNames = false }).Prompts(1, 1));
    }

    [Fact]
    public void FormatTemplate_WhenTheTemplateHasANamedField_Fails()
    {
        Assert.Throws<FormatException>(() => ZeroShotProtocol.FormatTemplate("a photo of a {name}.", "tench"));
    }

    [Fact]
    public void Count_GivenPredictionsAndLabels_CountsTop1AndTop5AsTheReference()
    {
        using var topK = tensor(new long[] { 3, 1, 2, 0, 4, 0, 1, 2, 3, 4, 9, 8, 7, 6, 5 }, [3, 5]);
        using var targets = tensor(new long[] { 3, 4, 1 });

        var counts = ZeroShotCounts.Count(topK, targets);

        Assert.Equal(new ZeroShotCounts(1, 2, 3), counts);
        Assert.Equal(100.0 / 3, counts.Top1Percent, 12);
        Assert.Equal(new ZeroShotCounts(2, 4, 6), counts.Add(counts));
    }

    [Fact]
    public void KeyFor_ChangesWithLowerCasingNamesAndTemplates_ButNotBatchSize()
    {
        var key = ZeroShotClassifier.KeyFor("tower", TwoClasses);

        Assert.NotEqual(key, ZeroShotClassifier.KeyFor("tower", TwoClasses with { LowercaseClassNames = false }));
        Assert.NotEqual(key, ZeroShotClassifier.KeyFor("tower", TwoClasses with { ClassNames = ["American robin", "gila monster"] }));
        Assert.NotEqual(key, ZeroShotClassifier.KeyFor("tower", TwoClasses with { Templates = ["a photo of a {}."] }));
        Assert.NotEqual(key, ZeroShotClassifier.KeyFor("other tower", TwoClasses));
        Assert.Equal(key, ZeroShotClassifier.KeyFor("tower", TwoClasses with { ClassesPerBatch = 1 }));
    }

    [Fact]
    public void Build_WithOneClassPerBatch_GivesTheSameClassifier()
    {
        using var batched = ZeroShotClassifier.Build(Fixture.Tower, TwoClasses);
        using var single = ZeroShotClassifier.Build(Fixture.Tower, TwoClasses with { ClassesPerBatch = 1 });

        Assert.True(ZeroShotFixture.MaxAbsError(batched.Weights, single.Weights, "classifier") <= 1e-6f);
    }

    [Fact]
    public void BuildOrLoad_OnTheSecondCall_LoadsTheSavedClassifierWithoutTheTower()
    {
        using var cache = CheckpointTestFiles.NewTempFolder();
        using var counting = new CountingTower(Fixture.Tower);

        using var built = ZeroShotClassifier.BuildOrLoad(counting, TwoClasses, cache.Path, CPU);
        int callsToBuild = counting.Calls;
        using var loaded = ZeroShotClassifier.BuildOrLoad(counting, TwoClasses, cache.Path, CPU);

        Assert.Equal(1, callsToBuild);
        Assert.Equal(callsToBuild, counting.Calls);
        Assert.Equal(built.Key, loaded.Key);
        Assert.Equal(0f, ZeroShotFixture.MaxAbsError(built.Weights, loaded.Weights, "classifier"));
        Assert.True(File.Exists(ZeroShotClassifier.CachePath(cache.Path, built.Key)));
    }

    [Fact]
    public void TryLoad_WhenTheSavedKeyDiffers_ReturnsNull()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        using var classifier = ZeroShotClassifier.Build(Fixture.Tower, TwoClasses);
        var path = folder.File("classifier.safetensors");
        classifier.Save(path);

        Assert.Null(ZeroShotClassifier.TryLoad(path, ZeroShotClassifier.KeyFor("another tower", TwoClasses), CPU));
        using var same = ZeroShotClassifier.TryLoad(path, classifier.Key, CPU);
        Assert.NotNull(same);
        Assert.Equal(100.0, same.LogitScale);
    }

    /// <summary>Delegates to a real tower and counts the forwards, to see whether the cache was used.</summary>
    private sealed class CountingTower(ITextTower inner) : ITextTower
    {
        public int Calls { get; private set; }
        public int Width => inner.Width;
        public string Identity => inner.Identity;
        public void PrepareForInference(Device device) => inner.PrepareForInference(device);

        public Tensor EncodeTexts(IReadOnlyList<string> texts)
        {
            Calls++;
            return inner.EncodeTexts(texts);
        }

        public void Dispose() { }
    }
}
