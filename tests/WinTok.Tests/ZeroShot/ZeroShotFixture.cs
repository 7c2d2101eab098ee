using System.Text.Json;
using WinTok.Checkpoints;
using WinTok.Model;
using WinTok.TestSupport;
using static TorchSharp.torch;

namespace WinTok.Tests.ZeroShot;

/// <summary>
/// tests/fixtures/zeroshot (see its README): the reference's tokenizer ids, text-tower outputs, classifier, the tiny
/// WinTok's image features, logits and top-k for 10 classes x 80 templates. Loaded once and shared.
/// </summary>
internal sealed class ZeroShotFixture
{
    private static readonly Lazy<ZeroShotFixture> Shared = new(() => new ZeroShotFixture());

    private ZeroShotFixture()
    {
        Folder = TestFixtures.Folder("zeroshot");
        Io = Safetensors.Read(Path.Combine(Folder, "zeroshot.io.safetensors")).Tensors;
        using var json = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Folder, "zeroshot.json")));
        string[] Strings(string key) => json.RootElement.GetProperty(key).EnumerateArray().Select(e => e.GetString()!).ToArray();
        ClassNames = Strings("classnames");
        Templates = Strings("templates");
        Prompts = Strings("prompts");
        ExtraTexts = Strings("extra_texts");
        Tower = SiglipTextTower.Load(TextModelFolder, TokenizerFolder("tokenizer"));
    }

    public static ZeroShotFixture Get() => Shared.Value;

    public string Folder { get; }
    public string TextModelFolder => Path.Combine(Folder, "text_model");
    public IReadOnlyDictionary<string, Tensor> Io { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public IReadOnlyList<string> Templates { get; }
    public IReadOnlyList<string> Prompts { get; }
    public IReadOnlyList<string> ExtraTexts { get; }

    /// <summary>The tiny text tower with the tokenizer as transformers 5 saved it (tokenizer.json present).</summary>
    public SiglipTextTower Tower { get; }

    /// <summary><c>tokenizer</c> (as transformers 5.17 saved it) or <c>tokenizer_source</c> (what AutoTokenizer was given).</summary>
    public string TokenizerFolder(string name) => Path.Combine(Folder, name);

    /// <summary>The public tiny WinTok of tests/fixtures/reference, loaded as the reference parity tests load it.</summary>
    public static WinTokModel LoadTinyWinTok()
    {
        var reference = TestFixtures.Folder("reference");
        var config = ArgsJson.Deserialize(File.ReadAllText(Path.Combine(reference, "tiny.config.json")));
        var encoder = ReferenceArgs.EncoderFromHfConfig((IReadOnlyDictionary<string, object?>)config["encoder_config"]!);
        var args = (IReadOnlyDictionary<string, object?>)config["args"]!;
        return WinTokCheckpoint.Load(Path.Combine(reference, "tiny.weights.safetensors"), encoder, args).Model;
    }

    /// <summary>Max absolute difference, after checking the shapes agree.</summary>
    public static float MaxAbsError(Tensor expected, Tensor actual, string name)
    {
        Assert.True(expected.shape.SequenceEqual(actual.shape),
            $"{name}: shape ({string.Join(", ", actual.shape)}), reference ({string.Join(", ", expected.shape)})");
        using var scope = NewDisposeScope();
        return (actual.cpu().to(ScalarType.Float32) - expected.to(ScalarType.Float32)).abs().max().item<float>();
    }
}
