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

    [Theory]
    [InlineData("unitok/tiny.pth", ModelKinds.WinTok, ModelKinds.UniTok)]
    [InlineData("reference/tiny.pth", ModelKinds.UniTok, ModelKinds.WinTok)]
    public void LoadAndSummarize_AKindTheArgsContradict_FailNamingBothKinds(string relativePath, string given, string held)
    {
        // Not on the wrong architecture's terms (a UniTok file read as WinTok would complain about its SigLIP encoder).
        var path = Path.Combine(TestFixtures.Root, relativePath);
        var options = new ModelLoadOptions(Kind: given);

        foreach (var error in new[] { Assert.Throws<ArgumentException>(() => TokenizerCheckpoints.Load(path, options)),
                                      Assert.Throws<ArgumentException>(() => TokenizerCheckpoints.Summarize(path, options)) })
            Assert.Equal($"{path} holds a {held} checkpoint, not a {given} one; leave the model kind out to detect it, or give '{held}'", error.Message);
    }

    [Fact]
    public void Load_AKindGivenForAFileWhoseArgsAndKeysSayNothing_IsTakenAndTheStrictLoadJudgesIt()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        var path = folder.File("other.safetensors");
        using (var weight = TorchSharp.torch.zeros(2, 2))
            Safetensors.Write(path, new Dictionary<string, TorchSharp.torch.Tensor> { ["layer.weight"] = weight }, new Dictionary<string, string>());

        // Read as UniTok: the file has no args to configure one, which the UniTok reader says.
        var error = Assert.Throws<CheckpointFormatException>(() => TokenizerCheckpoints.Load(path, new ModelLoadOptions(Kind: ModelKinds.UniTok)));

        Assert.Contains("its UniTok configuration is unknown", error.Message);
    }

    [Theory]
    [InlineData("architecture")]
    [InlineData("whole config.json")]
    public void LoadAndSummarize_TheFixturesPthWithItsViTaminShapeAsJson_BuildTheUniTokModelThatGivesTheReferenceTokens(string given)
    {
        // The fixture's own .pth names 'vitamin_tiny', no preset; its config.json's architecture section describes it.
        var config = File.ReadAllText(TestFixtures.File("unitok", "tiny.config.json"));
        using var document = System.Text.Json.JsonDocument.Parse(config);
        var json = given == "architecture" ? document.RootElement.GetProperty("architecture").GetRawText() : config;
        var path = TestFixtures.File("unitok", "tiny.pth");
        var options = new ModelLoadOptions(EncoderConfigJson: json);

        var summary = TokenizerCheckpoints.Summarize(path, options);
        var loaded = TokenizerCheckpoints.Load(path, options);

        Assert.Equal((ModelKinds.UniTok, 48), (summary.Kind, summary.ImageSize));
        using var model = Assert.IsType<UniTokModel>(loaded.Model);
        Assert.Equal(UniTokTestModels.TinyShape, model.Config.Encoder);
        Assert.Equal(summary.ArgsJson, model.Description.ArgsJson);
        using var io = new DisposableDictionary(Safetensors.Read(TestFixtures.File("unitok", "tiny.io.safetensors")).Tensors);
        using var noGrad = TorchSharp.torch.no_grad();
        using var tokens = model.Tokenize(io["input"]);
        Assert.True(tokens.Indices.equal(io["indices"]).all().item<bool>());
    }

    [Theory]
    [InlineData("{}", "The ViTamin config has no 'stem_width'")]
    [InlineData("{\"stem_width\": 8, \"stage_widths\": [8], \"stage_depths\": [2, 4]}", "'stage_widths' should be a list of two integers")]
    [InlineData("{\"stem_width\": 8, \"stage_widths\": [8, 16], \"stage_depths\": [2, 4], \"vit_dim\": 64, \"vit_depth\": 2, \"vit_heads\": 5}",
        "ViT width 64 is not divisible by 5 heads")]
    [InlineData("[1, 2]", "not a JSON object")]
    public void CheckEncoderConfig_ABadViTaminShape_FailsSayingWhatIsWrong(string json, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => TokenizerCheckpoints.CheckEncoderConfig(json, ModelKinds.UniTok));

        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void CheckEncoderConfig_WithoutAKindForJsonThatIsNeitherEncoder_NamesBothReadings()
    {
        var error = Assert.Throws<ArgumentException>(() => TokenizerCheckpoints.CheckEncoderConfig("{\"hidden_size\": 64}", kind: null));

        Assert.StartsWith("neither a SigLIP vision config.json (The encoder config has no 'num_hidden_layers') nor a ViTamin shape (The ViTamin config has no 'stem_width')",
            error.Message);
    }

    [Fact]
    public void CheckEncoderConfig_WithoutAKind_AcceptsEitherEncoder()
    {
        var fixture = File.ReadAllText(TestFixtures.File("reference", "tiny.config.json"));
        using var document = System.Text.Json.JsonDocument.Parse(fixture);

        TokenizerCheckpoints.CheckEncoderConfig(document.RootElement.GetProperty("encoder_config").GetRawText(), kind: null);
        TokenizerCheckpoints.CheckEncoderConfig(File.ReadAllText(TestFixtures.File("unitok", "tiny.config.json")), kind: null);
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
