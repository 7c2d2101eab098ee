using System.Text.Json.Nodes;
using WinTok.Tests.Checkpoints;
using WinTok.Text;

namespace WinTok.Tests.ZeroShot;

/// <summary>The Gemma tokenizer's handling of what the fixture's prompts do not reach: overflow, padding side, odd files.</summary>
public sealed class GemmaTokenizerTests
{
    private static string Source => ZeroShotFixture.Get().TokenizerFolder("tokenizer_source");
    private static string Saved => ZeroShotFixture.Get().TokenizerFolder("tokenizer");

    [Fact]
    public void Encode_WhenTheTextOverflowsTheLength_CutsTheContentAndKeepsEosLast()
    {
        var tokenizer = GemmaTokenizer.Load(Saved);
        var text = string.Join(" ", Enumerable.Repeat("a photo of a tench.", 40));

        var ids = tokenizer.Encode(text, 64);

        Assert.Equal(64, ids.Length);
        Assert.Equal(1, ids[^1]);
        Assert.Equal(tokenizer.EncodeContent(text).Take(63), ids[..63]);
    }

    [Fact]
    public void Encode_WhenTheConfigPadsLeft_PutsThePaddingFirst()
    {
        using var folder = CopyWithConfig(Source, config => config["padding_side"] = "left");
        var right = GemmaTokenizer.Load(Source).Encode("x", 8);

        var left = GemmaTokenizer.Load(folder.Path).Encode("x", 8);

        Assert.Equal([399, 1, 0, 0, 0, 0, 0, 0], right);
        Assert.Equal([0, 0, 0, 0, 0, 0, 399, 1], left);
    }

    [Fact]
    public void Encode_WhenTheConfigAddsBos_PrependsIt()
    {
        using var folder = CopyWithConfig(Source, config => config["add_bos_token"] = true);

        var ids = GemmaTokenizer.Load(folder.Path).Encode("x", 4);

        Assert.Equal([2, 399, 1, 0], ids);
    }

    [Fact]
    public void Load_WhenNoFileSaysWhetherToAppendEos_FailsNamingTheSetting()
    {
        using var folder = CopyWithConfig(Source, config => config.Remove("add_eos_token"));

        var error = Assert.Throws<InvalidDataException>(() => GemmaTokenizer.Load(folder.Path));

        Assert.Contains("add_eos_token", error.Message);
        Assert.Contains("tokenizer_config.json", error.Message);
    }

    [Fact]
    public void Encode_WhenAnAddedTokenStripsSpaces_RefusesTextsHoldingIt()
    {
        using var folder = Copy(Saved);
        var path = folder.File("tokenizer.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        var mask = json["added_tokens"]!.AsArray().Single(t => (string?)t!["content"] == "<mask>")!;
        mask["lstrip"] = true;
        File.WriteAllText(path, json.ToJsonString());
        var tokenizer = GemmaTokenizer.Load(folder.Path);

        var error = Assert.Throws<NotSupportedException>(() => tokenizer.Encode("a <mask> of a tench.", 64));

        Assert.Contains("<mask>", error.Message);
        Assert.Equal(GemmaTokenizer.Load(Saved).Encode("a photo of a tench.", 64), tokenizer.Encode("a photo of a tench.", 64));
    }

    [Fact]
    public void Load_WhenTokenizerJsonNormalizesOtherwise_FailsNamingTheFile()
    {
        using var folder = Copy(Saved);
        var path = folder.File("tokenizer.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        json["normalizer"] = JsonNode.Parse("""{"type": "NFKC"}""");
        File.WriteAllText(path, json.ToJsonString());

        var error = Assert.Throws<NotSupportedException>(() => GemmaTokenizer.Load(folder.Path));

        Assert.Contains(path, error.Message);
        Assert.Contains("NFKC", error.Message);
    }

    [Fact]
    public void Load_WhenTheModelFileIsNotASentencePieceModel_FailsNamingIt()
    {
        using var folder = Copy(Saved);
        File.WriteAllBytes(folder.File("tokenizer.model"), [0x0A, 0xFF, 0xFF, 0xFF]);

        var error = Assert.Throws<InvalidDataException>(() => GemmaTokenizer.Load(folder.Path));

        Assert.Contains(folder.File("tokenizer.model"), error.Message);
    }

    private static CheckpointTestFiles.TempFolder CopyWithConfig(string source, Action<JsonObject> edit)
    {
        var folder = Copy(source);
        var path = folder.File("tokenizer_config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config);
        File.WriteAllText(path, config.ToJsonString());
        return folder;
    }

    private static CheckpointTestFiles.TempFolder Copy(string source)
    {
        var folder = CheckpointTestFiles.NewTempFolder();
        foreach (var file in Directory.EnumerateFiles(source)) File.Copy(file, folder.File(Path.GetFileName(file)));
        return folder;
    }
}
