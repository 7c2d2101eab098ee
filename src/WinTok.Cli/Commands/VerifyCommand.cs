using System.CommandLine;
using Azure.Storage.Blobs;
using WinTok.Data.Corpus;
using WinTok.Data.Shards;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok verify DATASET`: checks a token dataset against its manifest (files, sizes, sha256, row counts, token
/// shapes) and prints every problem. Exit code 0 when intact, 1 when any problem was found.
/// </summary>
internal static class VerifyCommand
{
    public static Command Create()
    {
        var dataset = new Argument<string>("DATASET")
        {
            Description = "Dataset root: a local folder, az://container/prefix or a blob URI (the folder holding _manifest.json).",
        };
        var connection = new Option<string?>("--blob-connection")
        {
            Description = "Blob storage connection string for blob datasets (default: the WINTOK_BLOB_CONNECTION environment variable).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION"),
        };
        var command = new Command("verify", "Check a token dataset: manifest, hashes, row counts, token shapes.")
        {
            dataset, connection,
        };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var location = parseResult.GetValue(dataset)!;
            var blobConnection = parseResult.GetValue(connection);
            var blobs = FileStores.IsBlobLocation(location) && !string.IsNullOrEmpty(blobConnection) ? new BlobServiceClient(blobConnection) : null;
            var store = FileStores.Open(location, blobs);

            var result = await DatasetVerifier.VerifyAsync(store, cancellationToken);
            foreach (var problem in result.Problems)
            {
                Console.Error.WriteLine(problem);
            }

            Console.WriteLine(result.IsValid
                ? $"{store.Location}: OK, {result.ShardsChecked} shards, {result.RowsChecked} rows"
                : $"{store.Location}: {result.Problems.Count} problems in {result.ShardsChecked} shards");
            return result.IsValid ? 0 : 1;
        });
        return command;
    }
}
