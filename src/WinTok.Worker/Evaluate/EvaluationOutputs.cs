using System.Text.Json;
using System.Text.Json.Serialization;
using Parquet;
using Parquet.Schema;
using SkiaSharp;
using WinTok.Data.Corpus;

namespace WinTok.Worker.Evaluate;

/// <summary>One image's metrics, as the per-image Parquet holds them.</summary>
internal sealed record ImageMetricsRow(string Key, string Source, int? Label, double Psnr, double Ssim, double? LpipsAlex, double? LpipsVgg,
    int? Top1, bool? Top5Hit);

/// <summary>
/// An evaluated partition's commit record: what its partial statistics file is (the finisher merges every partition's),
/// its zero-shot counts and where its per-image metrics went.
/// </summary>
internal sealed record EvaluatedPartition(int Partition, long Images, long Failures, string PartialPath, string PartialSha256,
    string PerImagePath, long? ZeroShotTop1, long? ZeroShotTop5)
{
    public string ToJson() => JsonSerializer.Serialize(this, EvaluationJson.Default.EvaluatedPartition);

    public static EvaluatedPartition FromJson(string json) =>
        JsonSerializer.Deserialize(json, EvaluationJson.Default.EvaluatedPartition) ?? throw new JsonException("The evaluated partition record is empty");
}

/// <summary>
/// The files an evaluation leaves in its OUTPUT: per partition the per-image metrics (<c>per_image/</c>) and the partial
/// statistics (<c>_partials/</c>, binary, merged by the finisher), and once: <c>metrics.json</c> and <c>grid.png</c>
/// (originals above their reconstructions). All create-only under names derived from the partition, so a retried
/// partition finds its identical files.
/// </summary>
internal static class EvaluationOutputs
{
    public const string MetricsFile = "metrics.json";
    public const string GridFile = "grid.png";

    public static string PartialPath(int partition) => $"_partials/part-{partition:D6}.stats";

    public static string PerImagePath(int partition) => $"per_image/part-{partition:D6}.parquet";

    private static readonly ParquetSchema PerImageSchema = new(
        new DataField<string>("key", nullable: false),
        new DataField<string>("source", nullable: false),
        new DataField<int?>("label"),
        new DataField<double>("psnr"),
        new DataField<double>("ssim"),
        new DataField<double?>("lpips_alex"),
        new DataField<double?>("lpips_vgg"),
        new DataField<int?>("zeroshot_top1"),
        new DataField<bool?>("zeroshot_top5_hit"));

    /// <summary>Writes a partition's per-image metrics, sorted by key (so every attempt writes the same bytes).</summary>
    public static Task<CommittedFile> WritePerImageAsync(IFileStore output, int partition, IReadOnlyCollection<ImageMetricsRow> rows,
        CancellationToken cancellationToken) =>
        output.CommitAsync(PerImagePath(partition), async (stream, token) =>
        {
            var sorted = rows.OrderBy(r => r.Key, StringComparer.Ordinal).ThenBy(r => r.Source, StringComparer.Ordinal).ToList();
            var fields = PerImageSchema.GetDataFields();
            await using var writer = await ParquetWriter.CreateAsync(PerImageSchema, stream, cancellationToken: token);
            using var group = writer.CreateRowGroup();
            await group.WriteAsync(fields[0], sorted.Select(r => r.Key).ToArray());
            await group.WriteAsync(fields[1], sorted.Select(r => r.Source).ToArray());
            await group.WriteAsync<int>(fields[2], sorted.Select(r => r.Label).ToArray().AsMemory(), cancellationToken: token);
            await group.WriteAsync<double>(fields[3], sorted.Select(r => r.Psnr).ToArray(), cancellationToken: token);
            await group.WriteAsync<double>(fields[4], sorted.Select(r => r.Ssim).ToArray(), cancellationToken: token);
            await group.WriteAsync<double>(fields[5], sorted.Select(r => r.LpipsAlex).ToArray().AsMemory(), cancellationToken: token);
            await group.WriteAsync<double>(fields[6], sorted.Select(r => r.LpipsVgg).ToArray().AsMemory(), cancellationToken: token);
            await group.WriteAsync<int>(fields[7], sorted.Select(r => r.Top1).ToArray().AsMemory(), cancellationToken: token);
            await group.WriteAsync<bool>(fields[8], sorted.Select(r => r.Top5Hit).ToArray().AsMemory(), cancellationToken: token);
            group.CompleteValidate();
        }, cancellationToken);

    /// <summary>
    /// A PNG a person can look at: the originals in the top row, each one's reconstruction below it; levels are (3, H, W)
    /// uint8 planes of side <paramref name="size"/>.
    /// </summary>
    public static Task<CommittedFile> WriteGridAsync(IFileStore output, IReadOnlyList<(byte[] Original, byte[] Reconstruction)> pairs, int size,
        CancellationToken cancellationToken) =>
        output.CommitAsync(GridFile, (stream, _) =>
        {
            using var bitmap = new SKBitmap(new SKImageInfo(size * pairs.Count, size * 2, SKColorType.Rgba8888, SKAlphaType.Opaque));
            for (var i = 0; i < pairs.Count; i++)
            {
                Paint(bitmap, pairs[i].Original, i * size, 0, size);
                Paint(bitmap, pairs[i].Reconstruction, i * size, size, size);
            }
            using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            data.SaveTo(stream);
            return Task.CompletedTask;
        }, cancellationToken);

    private static void Paint(SKBitmap bitmap, byte[] planes, int left, int top, int size)
    {
        var plane = size * size;
        for (var y = 0; y < size; y++)
            for (var x = 0; x < size; x++)
            {
                var at = y * size + x;
                bitmap.SetPixel(left + x, top + y, new SKColor(planes[at], planes[plane + at], planes[2 * plane + at]));
            }
    }

    /// <summary>Writes the final numbers once (create-only; an identical file from a retried finish is fine).</summary>
    public static Task<CommittedFile> WriteMetricsAsync(IFileStore output, EvaluationReport report, CancellationToken cancellationToken) =>
        output.CommitAsync(MetricsFile, (stream, token) => JsonSerializer.SerializeAsync(stream, report, EvaluationJson.Default.EvaluationReport, token),
            cancellationToken);
}

/// <summary>metrics.json: the numbers and everything needed to know what they mean.</summary>
internal sealed record EvaluationReport(
    Guid JobId,
    string Checkpoint,
    string CheckpointSha256,
    string ModelKind,
    string Dataset,
    string DatasetName,
    string Preprocessing,
    string Protocol,
    string Precision,
    long Images,
    long Failures,
    IReadOnlyDictionary<string, double> Metrics,
    IReadOnlyDictionary<string, JsonElement> Details);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(EvaluatedPartition))]
[JsonSerializable(typeof(EvaluationReport))]
internal sealed partial class EvaluationJson : JsonSerializerContext;
