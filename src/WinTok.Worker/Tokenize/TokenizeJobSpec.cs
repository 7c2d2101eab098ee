using System.Text.Json;
using System.Text.Json.Serialization;
using WinTok.Data.Corpus;

namespace WinTok.Worker.Tokenize;

/// <summary>
/// What a tokenize job was asked to do, fixed at submission and stored as the job's spec: every worker reads the same
/// facts, so every attempt of a partition writes byte-identical shards.
/// </summary>
/// <param name="Input">Corpus location: a local folder or a blob location (az://container/prefix or a blob URI).</param>
/// <param name="Output">Dataset location, same forms as <paramref name="Input"/>.</param>
/// <param name="Checkpoint">The checkpoint (.pth or .safetensors), local path or blob location.</param>
/// <param name="CheckpointSha256">Its hash at submission; a worker that finds another file refuses the work.</param>
/// <param name="Encoder">Encoder preset when the checkpoint's args do not name one (see EncoderShape.Presets).</param>
/// <param name="SemanticTokens">Whether shards carry the continuous semantic tokens besides the pixel tokens.</param>
/// <param name="CreatedUtc">Submission time; written into every shard, so it must not vary between attempts.</param>
internal sealed record TokenizeJobSpec(
    string Input,
    string Output,
    string Checkpoint,
    string CheckpointSha256,
    CorpusKind Kind,
    int FilesPerPartition,
    string? Encoder,
    bool SemanticTokens,
    int ImageSize,
    long MaxPixels,
    bool ReducedScaleJpegDecode,
    DateTimeOffset CreatedUtc)
{
    public const string JobKind = "tokenize";

    public string ToJson() => JsonSerializer.Serialize(this, TokenizeJsonContext.Default.TokenizeJobSpec);

    public static TokenizeJobSpec FromJson(string json) =>
        JsonSerializer.Deserialize(json, TokenizeJsonContext.Default.TokenizeJobSpec)
        ?? throw new JsonException("The tokenize job spec is empty");
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true,
    RespectNullableAnnotations = true, RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(TokenizeJobSpec))]
internal sealed partial class TokenizeJsonContext : JsonSerializerContext;
