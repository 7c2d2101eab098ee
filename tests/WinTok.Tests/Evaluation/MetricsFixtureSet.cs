using System.Collections.Concurrent;
using System.Text.Json;
using WinTok.Checkpoints;
using WinTok.TestSupport;
using static TorchSharp.torch;

namespace WinTok.Tests.Evaluation;

/// <summary>
/// One metrics fixture set: <c>NAME.io.safetensors</c> (tensors) and <c>NAME.expected.json</c> (scalars and parameter
/// lists), as made by tests/fixtures/metrics/generate.py or tests/fixtures-tools/make_lpips_fixture.py. Shapes are read
/// from the files, never assumed.
/// </summary>
internal sealed class MetricsFixtureSet
{
    private static readonly ConcurrentDictionary<string, Lazy<MetricsFixtureSet>> Cache = new();

    private MetricsFixtureSet(string ioPath)
    {
        IoPath = ioPath;
        Name = $"{Path.GetFileName(Path.GetDirectoryName(ioPath))}/{Path.GetFileName(ioPath)[..^".io.safetensors".Length]}";
        var (tensors, metadata) = Safetensors.Read(ioPath);
        // A set that only adds outputs names the file holding its inputs (metrics-lpips reuses ../metrics' images).
        if (metadata.TryGetValue("inputs", out var inputs))
            foreach (var (key, value) in Safetensors.Read(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(ioPath)!, inputs))).Tensors)
                tensors.TryAdd(key, value);
        Io = tensors;
        using var document = JsonDocument.Parse(File.ReadAllText(ioPath[..^".io.safetensors".Length] + ".expected.json"));
        Expected = document.RootElement.Clone();
    }

    public string IoPath { get; }

    public string Name { get; }

    public IReadOnlyDictionary<string, Tensor> Io { get; }

    public JsonElement Expected { get; }

    /// <summary>The images in [-1, 1], computed from their uint8 levels with the generator's float32 ops: k / 255 * 2 - 1.</summary>
    public Tensor Images() => Io["images_u8"].to(float32).div(255).mul(2).sub(1);

    public Tensor Reconstructions => Io["reconstructions"];

    /// <summary>A parameter list of expected.json (e.g. <c>lpips_weights</c>): [name, shape, dtype] triples in order.</summary>
    public IReadOnlyList<TensorSpec> Specs(params string[] path)
    {
        var element = path.Aggregate(Expected, (current, key) => current.GetProperty(key));
        return element.EnumerateArray()
            .Select(item => new TensorSpec(item[0].GetString()!, item[1].EnumerateArray().Select(size => size.GetInt64()).ToArray(), item[2].GetString()!))
            .ToList();
    }

    public static MetricsFixtureSet Get(string ioPath) =>
        Cache.GetOrAdd(ioPath, path => new Lazy<MetricsFixtureSet>(() => new MetricsFixtureSet(path))).Value;

    /// <summary>
    /// Every <c>*.io.safetensors</c> with a sibling <c>.expected.json</c> that holds <paramref name="requiredTensor"/>, in
    /// <paramref name="folders"/> (each may be absent).
    /// </summary>
    public static TheoryData<string> Sets(string requiredTensor, IEnumerable<string> folders)
    {
        var data = new TheoryData<string>();
        foreach (var folder in folders.Where(Directory.Exists))
        {
            foreach (var io in Directory.EnumerateFiles(folder, "*.io.safetensors").Order(StringComparer.Ordinal))
            {
                if (File.Exists(io[..^".io.safetensors".Length] + ".expected.json") && Get(io).Io.ContainsKey(requiredTensor))
                {
                    data.Add(io);
                }
            }
        }
        return data;
    }

    /// <summary>tests/fixtures/metrics and the folder named by WINTOK_METRICS_FIXTURES, when set.</summary>
    public static IReadOnlyList<string> MetricsFolders() => TestFixtures.WithExtra("metrics", "WINTOK_METRICS_FIXTURES");

    /// <summary>The pip-package LPIPS sets: tests/fixtures/metrics-lpips when present, plus the metrics folders.</summary>
    public static IReadOnlyList<string> PackageLpipsFolders() => [Path.Combine(TestFixtures.Root, "metrics-lpips"), .. MetricsFolders()];
}
