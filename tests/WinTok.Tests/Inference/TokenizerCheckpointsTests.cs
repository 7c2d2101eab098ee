using WinTok.Checkpoints;
using WinTok.Inference;
using WinTok.Model;
using WinTok.TestSupport;
using WinTok.Tests.Checkpoints;
using WinTok.Tests.Model;

namespace WinTok.Tests.Inference;

public sealed class TokenizerCheckpointsTests
{
    /// <summary>Every checkpoint file among the fixtures, with the kind of model it holds.</summary>
    public static TheoryData<string, string> FixtureCheckpoints()
    {
        var data = new TheoryData<string, string>();
        foreach (var (folder, kind) in new[] { ("reference", ModelKinds.WinTok), ("reference-held-out", ModelKinds.WinTok), ("unitok", ModelKinds.UniTok) })
            foreach (var file in Directory.EnumerateFiles(TestFixtures.Folder(folder))
                         .Where(f => f.EndsWith(".pth", StringComparison.Ordinal) || f.EndsWith(".weights.safetensors", StringComparison.Ordinal))
                         .Order(StringComparer.Ordinal))
                data.Add(Path.GetRelativePath(TestFixtures.Root, file), kind);
        return data;
    }

    [Theory]
    [MemberData(nameof(FixtureCheckpoints))]
    public void DetectKind_EveryFixtureCheckpoint_IsDetectedAsItsKind(string relativePath, string kind)
    {
        using var checkpoint = CheckpointFile.Read(Path.Combine(TestFixtures.Root, relativePath));

        Assert.Equal(kind, TokenizerCheckpoints.DetectKind(checkpoint));
    }

    [Fact]
    public void Load_UniTokSafetensorsWeWroteWithoutAKind_BuildsTheUniTokModelThatGivesTheReferenceTokens()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        var path = folder.File("unitok.safetensors");
        using (var original = UniTokTestModels.LoadFixtureTiny())
            UniTokCheckpoint.Save(original, path);

        var loaded = TokenizerCheckpoints.Load(path, ModelLoadOptions.Default);

        using var model = Assert.IsType<UniTokModel>(loaded.Model);
        using var io = new DisposableDictionary(Safetensors.Read(TestFixtures.File("unitok", "tiny.io.safetensors")).Tensors);
        using var noGrad = TorchSharp.torch.no_grad();
        using var tokens = model.Tokenize(io["input"]);
        Assert.True(tokens.Indices.equal(io["indices"]).all().item<bool>());
        Assert.Equal(ModelKinds.UniTok, model.Description.Kind);
    }

    [Fact]
    public void Load_WhenTheModelNameIsNoPresetAndNoShapeIsStored_FailsNamingThePresets()
    {
        // The reference's own .pth of the fixture names its small variant, which is no timm model.
        var error = Assert.Throws<ArgumentException>(() => TokenizerCheckpoints.Load(TestFixtures.File("unitok", "tiny.pth"), ModelLoadOptions.Default));

        Assert.Contains("'vitamin_tiny' names no known ViTamin encoder", error.Message);
        Assert.Contains("vitamin_large", error.Message);
    }

    [Fact]
    public void Load_AnExplicitKind_IsHonouredOverWhatTheFileLooksLike()
    {
        // A UniTok file loaded as WinTok fails on WinTok's terms (its args name no SigLIP tower), not as UniTok.
        var error = Assert.Throws<ArgumentException>(() =>
            TokenizerCheckpoints.Load(TestFixtures.File("unitok", "tiny.pth"), new ModelLoadOptions(Kind: ModelKinds.WinTok)));

        Assert.Contains("SigLIP", error.Message);
    }

    [Fact]
    public void Load_AnUnknownKind_FailsNamingTheKinds()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            TokenizerCheckpoints.Load(TestFixtures.File("unitok", "tiny.pth"), new ModelLoadOptions(Kind: "vqgan")));

        Assert.Contains("wintok, unitok", error.Message);
    }

    [Fact]
    public void DetectKind_WhenNeitherArgsNorKeysSayAnything_FailsNamingTheFile()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        var path = folder.File("other.safetensors");
        using (var weight = TorchSharp.torch.zeros(2, 2))
            Safetensors.Write(path, new Dictionary<string, TorchSharp.torch.Tensor> { ["layer.weight"] = weight }, new Dictionary<string, string>());
        using var checkpoint = CheckpointFile.Read(path);

        var error = Assert.Throws<CheckpointFormatException>(() => TokenizerCheckpoints.DetectKind(checkpoint));

        Assert.Contains("other.safetensors", error.Message);
    }
}
