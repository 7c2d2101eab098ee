using System.Text.Json;

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
/// Finds the fixture folders: <c>../shared/fixtures/preprocess</c> next to the repository and, when the environment
/// variable <c>WINTOK_PREPROCESS_FIXTURES</c> is set, that folder too (same layout: index.json, expected.safetensors).
/// </summary>
internal static class PreprocessFixtures
{
    public const string EnvironmentVariable = "WINTOK_PREPROCESS_FIXTURES";

    private static readonly Lazy<Dictionary<string, SafetensorsFile>> Expected = new(() =>
        Folders().ToDictionary(f => f, f => SafetensorsFile.Read(Path.Combine(f, "expected.safetensors"))));

    public static string SharedFolder
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "WinTok.sln")))
            {
                directory = directory.Parent;
            }
            if (directory is null)
            {
                throw new DirectoryNotFoundException($"No WinTok.sln above {AppContext.BaseDirectory}");
            }
            return Path.GetFullPath(Path.Combine(directory.FullName, "..", "shared", "fixtures", "preprocess"));
        }
    }

    public static IEnumerable<string> Folders()
    {
        yield return SharedFolder;
        var extra = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(extra))
        {
            yield return Path.GetFullPath(extra);
        }
    }

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
