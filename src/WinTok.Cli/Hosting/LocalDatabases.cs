namespace WinTok.Cli.Hosting;

/// <summary>
/// The results databases of this user's local runs, newest last, in <c>~/.wintok/local-databases.txt</c>. A local job
/// keeps its record beside its output (OUTPUT/_wintok/results.db) so the record travels with the data; this list is how
/// <c>wintok dashboard</c>, <c>jobs</c> and <c>metrics</c> find the latest one when no database is named or configured.
/// </summary>
internal static class LocalDatabases
{
    private const int Kept = 50;

    public static string ListFile { get; } =
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".wintok", "local-databases.txt");

    /// <summary>Puts <paramref name="database"/> last in the list (the list is a convenience: failing to write it fails nothing).</summary>
    public static void Remember(string database)
    {
        try
        {
            var path = Path.GetFullPath(database);
            var entries = Read().Where(entry => entry != path).Append(path).TakeLast(Kept).ToList();
            Directory.CreateDirectory(Path.GetDirectoryName(ListFile)!);
            var staging = $"{ListFile}.{Environment.ProcessId}.tmp";
            File.WriteAllLines(staging, entries);
            File.Move(staging, ListFile, overwrite: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>
    /// The most recently written of the listed databases and the one-machine worker's (<c>~/.wintok/results.db</c>), or
    /// null when none exists. SQLite writes go to the -wal file first, so its time counts too.
    /// </summary>
    public static string? Newest() =>
        Read().Append(EmbeddedDefaults.DefaultDatabase).Where(File.Exists).Distinct()
            .MaxBy(path => new[] { path, path + "-wal" }.Where(File.Exists).Max(File.GetLastWriteTimeUtc));

    /// <summary>
    /// The database a reading verb uses: the one named with --db; none (PostgreSQL) when a server is configured; else the
    /// newest local one, said on stderr so nobody mistakes whose jobs they see.
    /// </summary>
    public static string? Resolve(string? named)
    {
        if (named is not null || ServerConfigured()) return named;
        if (Newest() is not { } newest) return null;
        Console.Error.WriteLine($"wintok: results of the latest local run, {newest} (--db PATH for another; all in {ListFile})");
        return newest;
    }

    private static bool ServerConfigured() =>
        Environment.GetEnvironmentVariable("WINTOK_POSTGRES") is { Length: > 0 }
        || Environment.GetEnvironmentVariable("ResultsDatabase__ConnectionString") is { Length: > 0 };

    private static List<string> Read()
    {
        try
        {
            return File.Exists(ListFile) ? File.ReadAllLines(ListFile).Where(line => line.Length > 0).ToList() : [];
        }
        catch (IOException)
        {
            return [];
        }
    }
}
