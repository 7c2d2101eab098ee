using System.Text.Json.Nodes;
using WinTok.Checkpoints;
using WinTok.Model;
using WinTok.Tests.Checkpoints;
using static TorchSharp.torch;

namespace WinTok.Tests.ZeroShot;

/// <summary>Loading the text tower from HF folders: what is accepted, and bad input failing with the file and tensor named.</summary>
public sealed class SiglipTextTowerLoadingTests
{
    private static ZeroShotFixture Fixture => ZeroShotFixture.Get();

    [Fact]
    public void Load_WhenATensorIsMissing_FailsNamingTheFileAndTheTensor()
    {
        using var folder = CopyOfTextModel(tensors => tensors.Remove("text_model.encoder.layers.1.mlp.fc2.bias"));

        var error = Assert.Throws<CheckpointFormatException>(() => SiglipTextTower.Load(folder.Path, Fixture.TokenizerFolder("tokenizer")));

        Assert.Equal(folder.File("model.safetensors"), error.FilePath);
        Assert.Contains("text_model.encoder.layers.1.mlp.fc2.bias", error.Message);
        Assert.Contains("Missing", error.Message);
    }

    [Fact]
    public void Load_WhenATensorIsMisshaped_FailsNamingTheTensorAndBothShapes()
    {
        using var folder = CopyOfTextModel(tensors => tensors["text_model.head.weight"] = zeros(63, 48));

        var error = Assert.Throws<CheckpointFormatException>(() => SiglipTextTower.Load(folder.Path, Fixture.TokenizerFolder("tokenizer")));

        Assert.Contains("text_model.head.weight: module expects [64, 48], checkpoint has [63, 48]", error.Message);
    }

    [Fact]
    public void Load_WhenTheWeightFileIsMissing_FailsNamingIt()
    {
        using var folder = CopyOfTextModel(_ => { });
        File.Delete(folder.File("model.safetensors"));

        var error = Assert.Throws<FileNotFoundException>(() => SiglipTextTower.Load(folder.Path, Fixture.TokenizerFolder("tokenizer")));

        Assert.Equal(folder.File("model.safetensors"), error.FileName);
    }

    [Fact]
    public void Load_WhenTheConfigIsMissing_FailsNamingIt()
    {
        using var folder = CopyOfTextModel(_ => { });
        File.Delete(folder.File("config.json"));

        var error = Assert.Throws<FileNotFoundException>(() => SiglipTextTower.Load(folder.Path, Fixture.TokenizerFolder("tokenizer")));

        Assert.Equal(folder.File("config.json"), error.FileName);
    }

    [Theory]
    [InlineData("tokenizer.model")]
    [InlineData("tokenizer_config.json")]
    public void Load_WhenATokenizerFileIsMissing_FailsNamingIt(string file)
    {
        using var tokenizer = CopyOf(Fixture.TokenizerFolder("tokenizer"));
        File.Delete(tokenizer.File(file));

        var error = Assert.Throws<FileNotFoundException>(() => SiglipTextTower.Load(Fixture.TextModelFolder, tokenizer.Path));

        Assert.Equal(tokenizer.File(file), error.FileName);
        Assert.Contains(file, error.Message);
    }

    [Fact]
    public void Load_FromAFullSiglipFolder_TakesTheTextTowerAndItsTokenizerFromIt()
    {
        // A SigLIP2 checkpoint folder: one config with text_config and vision_config, vision and logit tensors beside
        // the text tower's, and the tokenizer files in the same folder.
        using var folder = CopyOfTextModel(tensors =>
        {
            tensors["vision_model.post_layernorm.weight"] = ones(8);
            tensors["logit_scale"] = ones(1);
            tensors["logit_bias"] = zeros(1);
        });
        var text = JsonNode.Parse(File.ReadAllText(folder.File("config.json")))!;
        var composite = new JsonObject
        {
            ["model_type"] = "siglip",
            ["text_config"] = text.DeepClone(),
            ["vision_config"] = new JsonObject { ["hidden_size"] = 8, ["model_type"] = "siglip_vision_model" },
        };
        File.WriteAllText(folder.File("config.json"), composite.ToJsonString());
        foreach (var file in Directory.EnumerateFiles(Fixture.TokenizerFolder("tokenizer")))
            File.Copy(file, folder.File(Path.GetFileName(file)));

        using var tower = SiglipTextTower.Load(folder.Path);
        using var embedded = tower.EncodeTexts(Fixture.Prompts.Take(80).ToArray());

        Assert.Equal(64, tower.Width);
        Assert.Equal(0f, ZeroShotFixture.MaxAbsError(Fixture.Io["prompt_pooler_output"][..80], embedded, "pooler_output"));
    }

    [Fact]
    public void FromHfConfig_WhenTheTextConfigOmitsFields_UsesTransformersDefaults()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        var path = folder.File("config.json");
        File.WriteAllText(path, """{"model_type": "siglip", "text_config": {"hidden_size": 1152, "intermediate_size": 4304, "num_attention_heads": 16, "num_hidden_layers": 27, "vocab_size": 256000}}""");

        var config = SiglipTextConfig.FromHfConfig(path);

        Assert.Equal(new SiglipTextConfig(256000, 1152, 4304, 27, 16, 64, 1e-6, null), config);
        Assert.Equal(1152, config.Width);
    }

    [Fact]
    public void Identity_OfTheSameFilesInAnotherFolder_IsTheSame_AndChangesWithTheTokenizer()
    {
        using var copy = CopyOf(Fixture.TextModelFolder);
        using var tokenizer = CopyOf(Fixture.TokenizerFolder("tokenizer"));
        using var same = SiglipTextTower.Load(copy.Path, tokenizer.Path);
        using var otherTokenizer = SiglipTextTower.Load(copy.Path, Fixture.TokenizerFolder("tokenizer_source"));

        Assert.Equal(Fixture.Tower.Identity, same.Identity);
        Assert.NotEqual(Fixture.Tower.Identity, otherTokenizer.Identity);
    }

    private static CheckpointTestFiles.TempFolder CopyOfTextModel(Action<Dictionary<string, Tensor>> edit)
    {
        var folder = CopyOf(Fixture.TextModelFolder);
        var path = folder.File("model.safetensors");
        var (tensors, metadata) = Safetensors.Read(path);
        edit(tensors);
        Safetensors.Write(path, tensors, metadata);
        foreach (var t in tensors.Values) t.Dispose();
        return folder;
    }

    private static CheckpointTestFiles.TempFolder CopyOf(string source)
    {
        var folder = CheckpointTestFiles.NewTempFolder();
        foreach (var file in Directory.EnumerateFiles(source)) File.Copy(file, folder.File(Path.GetFileName(file)));
        return folder;
    }
}
