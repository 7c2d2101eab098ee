using System.Text.Json;
using WinTok.TestSupport;

namespace WinTok.Data.Tests.Images;

/// <summary>One image of a preprocessing fixture folder and what the reference transform made of it.</summary>
/// <param name="File">File name inside the folder.</param>
/// <param name="Key">Tensor name in expected.safetensors.</param>
/// <param name="Mode">Pillow's mode for the decoded image (RGB, L, RGBA, P, CMYK, I;16, ...).</param>
/// <param name="Folder">The fixture folder.</param>
internal sealed record PreprocessFixture(string File, string Key, string Mode, string Folder)
{
    public string Path => System.IO.Path.Combine(Folder, File);

    public override string ToString() => $"{System.IO.Path.GetFileName(Folder)}/{File} ({Mode})";
}

/// <summary>
/// Finds the fixture folders: <c>tests/fixtures/preprocess</c> of this repository and, when the environment
/// variable <c>WINTOK_PREPROCESS_FIXTURES</c> is set, that folder too (same layout: index.json, expected.safetensors).
/// </summary>
internal static class PreprocessFixtures
{
    public const string EnvironmentVariable = "WINTOK_PREPROCESS_FIXTURES";

    private static readonly Lazy<Dictionary<string, SafetensorsFile>> Expected = new(() =>
        Folders().ToDictionary(f => f, f => SafetensorsFile.Read(Path.Combine(f, "expected.safetensors"))));

    /// <summary>tests/fixtures/preprocess: the reference transform on real photos and their variants.</summary>
    public static string Folder => TestFixtures.Folder("preprocess");

    public static IEnumerable<string> Folders() => TestFixtures.WithExtra("preprocess", EnvironmentVariable);

    /// <summary>Every image listed in every folder's index.json.</summary>
    public static IEnumerable<PreprocessFixture> All() => Folders().SelectMany(Read);

    public static ReadOnlySpan<byte> ExpectedLevels(PreprocessFixture fixture, int size) =>
        Expected.Value[fixture.Folder].GetUInt8(fixture.Key, 3, size, size);

    private static IEnumerable<PreprocessFixture> Read(string folder)
    {
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(folder, "index.json")));
        return [.. index.RootElement.GetProperty("images").EnumerateObject()
            .Select(image => new PreprocessFixture(
                image.Name,
                image.Value.GetProperty("key").GetString()!,
                image.Value.GetProperty("mode").GetString()!,
                folder))
            .OrderBy(f => f.File, StringComparer.Ordinal)];
    }
}
