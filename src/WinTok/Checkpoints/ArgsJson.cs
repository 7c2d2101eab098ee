using System.Collections;
using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;

namespace WinTok.Checkpoints;

/// <summary>
/// Stores checkpoint args as JSON (the <c>wintok.args</c> safetensors metadata entry) so that a safetensors file is
/// a complete checkpoint. Round trips the value model of <see cref="Checkpoint.Args"/>: integers stay long, floats
/// stay double (written with a decimal point or exponent), lists come back as <c>IReadOnlyList&lt;object?&gt;</c>.
/// </summary>
/// <remarks>
/// Lossy only where JSON has no type: NaN/±Infinity are written as the strings Python's json module would print,
/// bytes as base64 strings, <see cref="PythonObject"/> placeholders as their description.
/// </remarks>
internal static class ArgsJson
{
    public static string Serialize(IReadOnlyDictionary<string, object?> args)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            WriteValue(json, args);
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static IReadOnlyDictionary<string, object?> Deserialize(string text)
    {
        using var document = JsonDocument.Parse(text);
        return ReadValue(document.RootElement) as IReadOnlyDictionary<string, object?>
            ?? throw new JsonException("The args JSON is not an object");
    }

    private static void WriteValue(Utf8JsonWriter json, object? value)
    {
        switch (value)
        {
            case null:
                json.WriteNullValue();
                break;
            case bool flag:
                json.WriteBooleanValue(flag);
                break;
            case string text:
                json.WriteStringValue(text);
                break;
            case long or int or short or sbyte or byte or ushort or uint or ulong or BigInteger:
                json.WriteRawValue(((IFormattable)value).ToString(null, CultureInfo.InvariantCulture));
                break;
            case double or float:
                WriteFloat(json, Convert.ToDouble(value, CultureInfo.InvariantCulture));
                break;
            case byte[] bytes:
                json.WriteBase64StringValue(bytes);
                break;
            case IReadOnlyDictionary<string, object?> dict:
                json.WriteStartObject();
                foreach (var (key, item) in dict)
                {
                    json.WritePropertyName(key);
                    WriteValue(json, item);
                }
                json.WriteEndObject();
                break;
            case IDictionary dict:
                json.WriteStartObject();
                foreach (DictionaryEntry entry in dict)
                {
                    json.WritePropertyName(Convert.ToString(entry.Key, CultureInfo.InvariantCulture) ?? "None");
                    WriteValue(json, entry.Value);
                }
                json.WriteEndObject();
                break;
            case IEnumerable items:
                json.WriteStartArray();
                foreach (object? item in items)
                {
                    WriteValue(json, item);
                }
                json.WriteEndArray();
                break;
            default:
                json.WriteStringValue(Convert.ToString(value, CultureInfo.InvariantCulture));
                break;
        }
    }

    private static void WriteFloat(Utf8JsonWriter json, double value)
    {
        if (!double.IsFinite(value))
        {
            json.WriteStringValue(double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
            return;
        }
        // "R" round-trips; a bare "1" would come back as an integer, so floats always carry '.' or an exponent.
        string text = value.ToString("R", CultureInfo.InvariantCulture);
        json.WriteRawValue(text.Contains('.') || text.Contains('E') ? text : text + ".0");
    }

    private static object? ReadValue(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => element.GetString(),
        JsonValueKind.Number => ReadNumber(element.GetRawText()),
        JsonValueKind.Array => element.EnumerateArray().Select(ReadValue).ToArray(),
        JsonValueKind.Object => ReadObject(element),
        _ => throw new JsonException($"Unexpected JSON value kind {element.ValueKind}"),
    };

    private static IReadOnlyDictionary<string, object?> ReadObject(JsonElement element)
    {
        var result = new OrderedDictionary<string, object?>();
        foreach (var property in element.EnumerateObject())
        {
            result[property.Name] = ReadValue(property.Value);
        }
        return new System.Collections.ObjectModel.ReadOnlyDictionary<string, object?>(result);
    }

    private static object ReadNumber(string text)
    {
        if (text.AsSpan().IndexOfAny(".eE") >= 0)
        {
            return double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
        }
        // Boxed separately: a conditional of long and BigInteger would widen every integer to BigInteger.
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long small))
        {
            return small;
        }
        return BigInteger.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
    }
}
