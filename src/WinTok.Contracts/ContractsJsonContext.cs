using System.Text.Json.Serialization;

namespace WinTok.Contracts;

/// <summary>
/// Source-generated JSON for every message record. Missing constructor parameters and nulls in non-nullable members are
/// errors, so a truncated or foreign message fails to deserialize instead of becoming a job with an empty id.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(TokenizePartition))]
[JsonSerializable(typeof(EvaluatePartition))]
[JsonSerializable(typeof(TrainRun))]
public sealed partial class ContractsJsonContext : JsonSerializerContext;
