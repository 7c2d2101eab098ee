using System.Text.Json;
using System.Text.Json.Serialization;
using WinTok.Data.Corpus;
using WinTok.Jobs.Checkpoints;

namespace WinTok.Jobs.Tokenize;

/// <summary>
/// What a tokenize job was asked to do, fixed at submission and stored as the job's spec: every worker reads the same
/// facts, so every attempt of a partition writes byte-identical shards.
/// </summary>
/// <param name="Input">Corpus location: a local folder or a blob location (az://container/prefix or a blob URI).</param>
/// <param name="Output">Dataset location, same forms as <paramref name="Input"/>.</param>
/// <param name="Checkpoint">The checkpoint and its identity (hash, size, version), fixed at submission.</param>
/// <param name="Model">How to read the checkpoint when its args do not say everything (kind, encoder).</param>
/// <param name="SemanticTokens">Whether shards carry the continuous semantic tokens besides the pixel tokens.</param>
/// <param name="ImageSize">The model's input side, read from the checkpoint's args at submission.</param>
/// <param name="MaxPixels">Images whose header claims more pixels are rejected (<c>PreprocessOptions.MaxPixels</c>).</param>
/// <param name="ReducedScaleJpegDecode">Decode large JPEGs at reduced scale (<c>PreprocessOptions.ReducedScaleJpegDecode</c>).</param>
/// <param name="CreatedUtc">Submission time; written into every shard, so it must not vary between attempts.</param>
/// <param name="KeepDamagedImages">
/// Keep one-scan JPEGs that Pillow refuses as broken although every row decodes
/// (<c>PreprocessOptions.KeepDamagedImages</c>); in the spec so that every worker applies the same rule. Absent in the
/// specs of jobs submitted before it existed, which read as false.
/// </param>
public sealed record TokenizeJobSpec(
    string Input,
    string Output,
    CheckpointReference Checkpoint,
    ModelChoice Model,
    CorpusKind Kind,
    int FilesPerPartition,
    bool SemanticTokens,
    int ImageSize,
    long MaxPixels,
    bool ReducedScaleJpegDecode,
    DateTimeOffset CreatedUtc,
    bool KeepDamagedImages = false)
{
    public const string JobKind = "tokenize";

    public string ToJson() => JsonSerializer.Serialize(this, JobsJsonContext.Default.TokenizeJobSpec);

    public static TokenizeJobSpec FromJson(string json) =>
        JsonSerializer.Deserialize(json, JobsJsonContext.Default.TokenizeJobSpec)
        ?? throw new JsonException("The tokenize job spec is empty");
}

/// <summary>Source-generated JSON for every spec the control plane stores; missing members and nulls are errors.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true,
    RespectNullableAnnotations = true, RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(TokenizeJobSpec))]
[JsonSerializable(typeof(WinTok.Jobs.Evaluate.EvaluateJobSpec))]
[JsonSerializable(typeof(WinTok.Jobs.Train.TrainJobSpec))]
internal sealed partial class JobsJsonContext : JsonSerializerContext;
