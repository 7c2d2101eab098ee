using System.Collections.Concurrent;
using WinTok.Checkpoints;
using WinTok.Model;
using WinTok.TestSupport;
using WinTok.Tests.Checkpoints;
using static TorchSharp.torch;

namespace WinTok.Tests.Model;

/// <summary>
/// One reference fixture set (<c>NAME.config.json</c>, <c>.pth</c>, <c>.weights.safetensors</c>, <c>.io.safetensors</c>)
/// and the outputs our model computes for it, loaded once per checkpoint format and shared by the parity tests.
/// </summary>
internal sealed class ReferenceFixtureSet
{
    private static readonly ConcurrentDictionary<string, Lazy<ReferenceFixtureSet>> Cache = new();

    private ReferenceFixtureSet(string configPath, string format)
    {
        var folder = Path.GetDirectoryName(configPath)!;
        Name = Path.GetFileName(configPath)[..^".config.json".Length];
        var config = ArgsJsonFile(configPath);
        var args = (IReadOnlyDictionary<string, object?>)config["args"]!;
        Encoder = ReferenceArgs.EncoderFromHfConfig((IReadOnlyDictionary<string, object?>)config["encoder_config"]!);
        Io = Safetensors.Read(Path.Combine(folder, Name + ".io.safetensors")).Tensors;

        // The .pth carries its own args (read from the pickle); the fixtures' safetensors carry none, so the test
        // passes the config file's. Neither names a known encoder preset, so the encoder comes from encoder_config.
        var checkpointPath = Path.Combine(folder, format == "pth" ? Name + ".pth" : Name + ".weights.safetensors");
        var loaded = WinTokCheckpoint.Load(checkpointPath, Encoder, format == "pth" ? null : args);
        Args = loaded.Args;
        var input = Io["input"];
        using (no_grad())
        {
            var model = loaded.Model;
            Indices = model.ImageToIndices(input);
            using var encoded = model.Encode(input);
            Outputs = new Dictionary<string, Tensor>
            {
                ["quant"] = encoded.Quant.clone(),
                ["query_tokens"] = encoded.QueryTokens.clone(),
                ["pooler_out"] = encoded.PoolerOut.clone(),
                ["image_embedding"] = model.EncodeImage(input),
                ["recon"] = model.Decode(encoded.Quant),
                ["recon_from_indices"] = model.IndicesToImage(Io["indices"]),
            };
            // The serving path: fused q/k/v, the folded value path of the down-projection, float32.
            model.PrepareForInference(ScalarType.Float32);
            using var served = model.Tokenize(input);
            ServedIndices = served.Indices.clone();
            ServedSemanticTokens = served.SemanticTokens!.clone();
        }
        loaded.Model.Dispose();

        // Training mode on a freshly loaded model: fresh usage statistics, as the fixture generator had.
        using var training = WinTokCheckpoint.Load(checkpointPath, Encoder, format == "pth" ? null : args).Model;
        training.train();
        var (trainEncoded, trainRecon) = training.Forward(input);
        TrainVqLoss = trainEncoded.VqLoss.item<float>();
        TrainEntropyLoss = trainEncoded.EntropyLoss.item<float>();
        TrainRecon = trainRecon.detach();
        trainEncoded.Dispose();
    }

    public string Name { get; }
    public EncoderShape Encoder { get; }
    public IReadOnlyDictionary<string, object?> Args { get; }
    public IReadOnlyDictionary<string, Tensor> Io { get; }
    public Tensor Indices { get; }
    public IReadOnlyDictionary<string, Tensor> Outputs { get; }
    public Tensor ServedIndices { get; }
    public Tensor ServedSemanticTokens { get; }
    public float TrainVqLoss { get; }
    public float TrainEntropyLoss { get; }
    public Tensor TrainRecon { get; }

    public static ReferenceFixtureSet Get(string configPath, string format) =>
        Cache.GetOrAdd(configPath + "|" + format, _ => new Lazy<ReferenceFixtureSet>(() => new ReferenceFixtureSet(configPath, format))).Value;

    /// <summary>
    /// Every <c>*.config.json</c> in tests/fixtures/reference, in the held-out sets (tests/fixtures/reference-held-out,
    /// made by the reference code with other shapes) and, when set, in the folder named by
    /// <c>WINTOK_PARITY_FIXTURES</c>; each with both checkpoint formats.
    /// </summary>
    public static TheoryData<string, string> All()
    {
        var folders = TestFixtures.WithExtra("reference", "WINTOK_PARITY_FIXTURES").ToList();
        folders.Insert(1, TestFixtures.Folder("reference-held-out"));
        var data = new TheoryData<string, string>();
        foreach (var config in folders.SelectMany(f => Directory.EnumerateFiles(f, "*.config.json")).Order(StringComparer.Ordinal))
            foreach (var format in new[] { "pth", "safetensors" })
                data.Add(config, format);
        return data;
    }

    private static IReadOnlyDictionary<string, object?> ArgsJsonFile(string path) => ArgsJson.Deserialize(File.ReadAllText(path));
}
