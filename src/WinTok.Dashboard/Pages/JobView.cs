using System.Text.Json;
using WinTok.Results;

namespace WinTok.Dashboard.Pages;

/// <summary>Why retry is not offered here, and what to run instead.</summary>
/// <param name="Command">A command that does it (e.g. <c>wintok jobs retry ID --db PATH</c>), or null.</param>
public sealed record RetryRefusal(string Reason, string? Command);

/// <summary>One job's page: its progress, spec, partitions and recorded failures, and which actions apply.</summary>
public sealed record JobView(
    JobRecord Job,
    JobProgress Progress,
    JobRates Rates,
    IReadOnlyList<(string Name, string Value)> Spec,
    IReadOnlyList<PartitionRecord> Partitions,
    IReadOnlyList<ItemFailureRecord> Failures,
    bool CanCancel,
    bool CanRetry,
    RetryRefusal? RetryRefusal,
    string? Notice,
    bool HasEvaluation);

/// <summary>A job spec's fields as (name, value) lines: top-level values and one level of nested objects.</summary>
public static class SpecSummary
{
    public static IReadOnlyList<(string Name, string Value)> Of(string specJson)
    {
        var lines = new List<(string, string)>();
        try
        {
            using var document = JsonDocument.Parse(specJson);
            if (document.RootElement.ValueKind != JsonValueKind.Object) return lines;
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Value.ValueKind == JsonValueKind.Object)
                {
                    foreach (var inner in property.Value.EnumerateObject().Where(p => p.Value.ValueKind is not (JsonValueKind.Object or JsonValueKind.Array)))
                        lines.Add(($"{property.Name}.{inner.Name}", Text(inner.Value)));
                }
                else
                {
                    lines.Add((property.Name, Text(property.Value)));
                }
            }
        }
        catch (JsonException)
        {
            lines.Add(("spec", specJson));
        }
        return lines;
    }

    private static string Text(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString() ?? "",
        JsonValueKind.Array => string.Join(", ", value.EnumerateArray().Select(Text)),
        JsonValueKind.Null => "",
        _ => value.GetRawText(),
    };
}
