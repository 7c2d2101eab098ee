namespace WinTok.TestSupport;

/// <summary>
/// Where the tests find their fixtures: <c>tests/fixtures</c> of this repository (copies of the reference outputs with
/// their READMEs, see tests/fixtures/README.md), plus any extra folder an environment variable names. Compiled into
/// every test project (tests/Directory.Build.props), so no project reaches outside the repository.
/// </summary>
internal static class TestFixtures
{
    /// <summary>The repository root: the first folder above the test binary that holds WinTok.sln.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary><c>tests/fixtures</c>.</summary>
    public static string Root { get; } = Path.Combine(RepositoryRoot, "tests", "fixtures");

    /// <summary>A fixture folder by name, e.g. <c>reference</c>, <c>preprocess</c>, <c>metrics</c>.</summary>
    public static string Folder(string name)
    {
        var path = Path.Combine(Root, name);
        return Directory.Exists(path)
            ? path
            : throw new DirectoryNotFoundException($"Fixture folder {path} is missing; tests/fixtures/README.md says where each comes from");
    }

    /// <summary>A file of a fixture folder, e.g. <c>File("reference", "tiny.pth")</c>.</summary>
    public static string File(string folder, string name) => Path.Combine(Folder(folder), name);

    /// <summary>
    /// The repository's folder <paramref name="name"/> followed by the folder the environment variable
    /// <paramref name="environmentVariable"/> names, when it is set: tests run on every set in both.
    /// </summary>
    public static IReadOnlyList<string> WithExtra(string name, string environmentVariable)
    {
        var folders = new List<string> { Folder(name) };
        if (Environment.GetEnvironmentVariable(environmentVariable) is { Length: > 0 } extra)
        {
            folders.Add(Directory.Exists(extra)
                ? Path.GetFullPath(extra)
                : throw new DirectoryNotFoundException($"{environmentVariable} names {extra}, which does not exist"));
        }
        return folders;
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (System.IO.File.Exists(Path.Combine(directory.FullName, "WinTok.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException($"No WinTok.sln above {AppContext.BaseDirectory}");
    }
}
